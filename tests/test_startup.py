"""``%load_ext nbsessions`` imports only what the first cell needs: heavy libraries load where they are used, and
the ``openai`` SDK in a background thread. Checked in a fresh interpreter, by which thread imported what."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each costs from ~25 ms (markdown-it) to over a second (nbformat brings jsonschema) to import.
HEAVY = ("nbformat", "jsonschema", "ipywidgets", "openai", "httpx", "pydantic", "genai_prices", "markdown_it",
         "psycopg", "nbsessions.explore", "nbsessions.panel")

PROBE = r"""
import json, sys, threading

imported = []  # (module, thread name), in the order first imported


class Recorder:
    def find_spec(self, name, path=None, target=None):
        imported.append((name, threading.current_thread().name))
        return None


from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
before = set(sys.modules)
sys.meta_path.insert(0, Recorder())
shell.run_line_magic("load_ext", "nbsessions")
main = [name for name, thread in list(imported) if thread == "MainThread"]
magics = shell.magics_manager.registry["AgentMagics"]
magics.warming.join(120)
print(json.dumps({"before": sorted(before), "main": main, "imported": imported,
                  "alive": magics.warming.is_alive()}))
"""


def probe() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _top(name: str, heavy: str) -> bool:
    return name == heavy or name.startswith(heavy + ".")


def test_loading_the_extension_imports_no_heavy_library_and_warms_openai_in_the_background():
    seen = probe()
    assert "nbsessions.magic.magics" in seen["main"]  # the recorder saw the load itself
    loaded_by_load = [name for name in seen["main"] if name not in seen["before"]]
    assert [n for n in loaded_by_load if any(_top(n, h) for h in HEAVY)] == []
    assert not seen["alive"]
    by_warm_up = {name for name, thread in seen["imported"] if thread == "nbsessions-warm-up"}
    assert {"openai", "markdown_it"} <= by_warm_up
    for unused in ("nbformat", "jsonschema", "ipywidgets", "genai_prices", "psycopg", "nbsessions.explore",
                   "nbsessions.panel"):
        assert not any(_top(name, unused) for name, _ in seen["imported"]), unused
