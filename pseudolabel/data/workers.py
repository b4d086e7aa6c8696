"""Ordered map over work items in worker processes (CPU-bound per-image work, numpy only)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def imap_ordered(fn: Callable[[T], R], items: list[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items``, results in order: in this process when ``workers <= 1`` (or one
    item), else in a pool of ``min(workers, len(items))`` processes. ``fn`` must be picklable
    (a module-level function or a frozen dataclass with ``__call__``)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(min(workers, len(items))) as pool:
        yield from pool.imap(fn, items)
