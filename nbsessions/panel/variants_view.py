"""Variants of one prompt, side by side: the original run and its regenerations, one column each.

The prompt is shown once above the columns. The variant kept in history says so; every other completed variant
has a "Keep this one" button, and "Regenerate" asks the same prompt once more as one more column.
"""

from __future__ import annotations

from collections.abc import Callable

from ipywidgets import HTML, Button, HBox, Layout, VBox, Widget

from nbsessions.panel import formatting as fmt
from nbsessions.panel.run_html import META_STYLE, render_prompt
from nbsessions.records import theme
from nbsessions.records.schema import RunOutput, RunStatus

Member = tuple[int, RunOutput]  # (number in the session, run)
_KEPT_COLOUR = theme.SUCCESS
_COLUMN = dict(flex="1 1 0", min_width="220px", padding="0 6px", margin="0 4px 0 0",
               border=f"1px solid {theme.BORDER}")


def is_kept(run: RunOutput) -> bool:
    """The variant later runs see as history: completed and not superseded by a sibling."""
    return run.status == RunStatus.completed and run.superseded_by is None


class VariantGroup(VBox):
    """``render(number, run)`` makes a column's body (the panel's run block, without the prompt);
    ``on_keep(run_id)`` and ``on_regenerate(run_id)`` ask the panel to act. ``sent`` is the Sent view shown
    once under the prompt: every variant sent the same context."""

    def __init__(self, members: list[Member], render: Callable[[int, RunOutput], Widget],
                 on_keep: Callable[[str], None], on_regenerate: Callable[[str], None],
                 sent: Widget | None = None) -> None:
        self.keep_buttons: dict[str, Button] = {}
        original = members[0][1]
        slot = original.variant_of or original.run_id
        numbers = ", ".join(f"#{number}" for number, _run in members)
        head = HTML(f'<div style="{META_STYLE}">{len(members)} variants of one prompt ({numbers})</div>'
                    + render_prompt(original))
        columns = [self._column(number, run, render, on_keep) for number, run in members]
        self.columns = HBox(columns, layout=Layout(width="100%", overflow="auto", align_items="stretch"))
        self.regenerate = Button(description="Regenerate", icon="refresh",
                                 tooltip="ask this prompt again, with the same context: one more variant")
        self.regenerate.on_click(lambda _b: on_regenerate(slot))
        super().__init__([head, *([sent] if sent else []), self.columns, self.regenerate],
                         layout=Layout(margin="6px 0"))
        self.add_class("nbsessions-variants")

    def _column(self, number: int, run: RunOutput, render: Callable[[int, RunOutput], Widget],
                on_keep: Callable[[str], None]) -> VBox:
        if is_kept(run):
            foot: Widget = HTML(fmt.badge("kept in history", _KEPT_COLOUR))
        elif run.status == RunStatus.completed:
            foot = Button(description="Keep this one", icon="check",
                          tooltip=f"use #{number} as this prompt's answer in later runs' history")
            foot.on_click(lambda _b, run_id=run.run_id: on_keep(run_id))
            self.keep_buttons[run.run_id] = foot
        else:
            foot = HTML("")
        column = VBox([render(number, run), foot], layout=Layout(**_COLUMN))
        column.add_class("nbsessions-variant")
        return column
