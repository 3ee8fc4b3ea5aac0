"""Released together: the one helper race tests use to start several threads on the same work at once."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(count: int, work: Callable[[int], object]) -> list[object]:
    """``work(i)`` from ``count`` threads released together by a barrier; what each returned (or raised)."""
    barrier, results = threading.Barrier(count), [None] * count

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
