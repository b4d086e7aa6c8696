"""Which CAM key of a store a stage reads when none is given: the one rule used by refine,
train-affinity, the report and the benchmarks."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pseudolabel.errors import BadInputError

#: The key read by default when the store holds it (the student's exact CAM).
DEFAULT_KEY = "student/features"


def resolve_key(keys: Sequence[str], key: str | None = None, *,
                path: str | os.PathLike | None = None) -> str:
    """The CAM key to read from a store holding ``keys``.

    ``key`` when given (it must be one of ``keys``); else :data:`DEFAULT_KEY` when stored, else
    the store's first key. A store without keys or an unknown ``key`` is a
    :class:`~pseudolabel.errors.BadInputError` naming ``path`` (the store).
    """
    keys = list(keys)
    if key is None:
        if not keys:
            raise BadInputError("the CAM store holds no CAM keys", path=path,
                                fix="remake it with pseudolabel make-cams")
        return DEFAULT_KEY if DEFAULT_KEY in keys else keys[0]
    if key not in keys:
        raise BadInputError(f"CAM key {key!r} is not in the store", path=path,
                            fix=f"use --key with one of: {', '.join(keys)}")
    return key
