"""Progress bars for long work (tqdm on stderr; silent when ``PSEUDOLABEL_NO_PROGRESS`` is set)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", **kwargs: Any
) -> Any:
    """A tqdm bar over ``iterable`` (or a manual bar when ``iterable`` is None)."""
    from tqdm.auto import tqdm

    disable = kwargs.pop("disable", None)
    if disable is None:
        disable = bool(os.environ.get("PSEUDOLABEL_NO_PROGRESS"))
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True,
                leave=False, **kwargs)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
