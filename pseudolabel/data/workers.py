"""Ordered map over work items in worker processes (CPU-bound per-image work, numpy only);
what every worker and training loader shares."""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def init_worker(_: object = None) -> None:
    """Start of every worker process (pools and DataLoader workers): one torch thread each, and
    Ctrl-C left to the main process, which stops cleanly and says how to resume (a terminal
    sends SIGINT to the whole process group; workers would print tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def drops_last(shard: int, batch_size: int) -> bool:
    """Whether a training loader drops its incomplete last batch: yes (a batch of one image
    breaks batch norm where a layer's output is 1x1), unless the shard is smaller than one
    batch, so that a tiny set still trains. The one rule of every training loop (classifiers,
    the affinity net)."""
    return shard >= batch_size


def imap_ordered(fn: Callable[[T], R], items: list[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items``, results in order: in this process when ``workers <= 1`` (or one
    item), else in a pool of ``min(workers, len(items))`` processes. ``fn`` must be picklable
    (a module-level function or a frozen dataclass with ``__call__``)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(min(workers, len(items)), initializer=init_worker) as pool:
        yield from pool.imap(fn, items)
