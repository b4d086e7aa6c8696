"""The stage runtime: what every stage that writes an output shares, written once.

A stage is ``run(config, inputs..., out) -> Path`` (the hloc shape); the CLI only builds the
config and calls it. Around its work a stage claims its output with :func:`claim_output`:

* the output path is resolved (symlinks followed) and checked: not the current folder or one of
  its parents, no parent that is a file, a place this process may write (else one
  :class:`BadInputError` naming the path and the fix);
* one :class:`~pseudolabel.io.RunLock` on the resolved path, so no two runs write it at once
  (an alias through a symlink meets the same lock);
* temporary files a killed run left are removed;
* "is the previous output compatible?" has one answer: the saved record of the previous run
  (its resolved config, the files named in ``record``) is compared with this run's, leaving out
  the fields the config class declares in ``RESUME_MAY_CHANGE`` (:func:`differences`). Same:
  resume. Different: refused unless ``overwrite``. ``overwrite`` leaves only the new run's
  outputs (the old ones are deleted first). A record without outputs (a run that stopped before
  writing anything) or an unreadable record under ``overwrite`` never blocks;
* a run that fails before writing any output leaves nothing claimed: its record is removed (and
  the folder, when this run made it), so the corrected rerun is not refused.

:func:`os_error` turns an ``OSError`` into the one-line error the CLI prints (permission
denied, read-only file system, disk full, ...). Devices resolve in one place too:
:func:`pseudolabel.ops.resolve_device`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pseudolabel.errors import BadInputError
from pseudolabel.io import RunLock, remove_stale_temp_files

log = logging.getLogger(__name__)

Outputs = Callable[[Path], Iterable[Path]]


# ------------------------------------------------------------------------------ OS errors
_OS_FIXES: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "choose a path you may write (or read), or fix its "
                                        "permissions"),
    errno.EPERM: ("operation not permitted", "choose a path you may write, or fix its "
                                             "permissions"),
    errno.EROFS: ("read-only file system", "choose an output on a writable disk"),
    errno.ENOSPC: ("no space left on the device", "free disk space (or choose an output on "
                                                  "another disk), then rerun to resume"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, then rerun to resume"),
    errno.ENOTDIR: ("a parent of this path is a file, not a folder",
                    "choose another path, or move the file away"),
    errno.EEXIST: ("a file is in the way of a folder", "choose another path, or move the file "
                                                       "away"),
    errno.EISDIR: ("is a folder, not a file", "give a file path"),
    errno.ENOENT: ("does not exist", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer workers"),
}


def os_error(exc: OSError, path: str | os.PathLike | None = None) -> BadInputError | None:
    """The :class:`BadInputError` for an OS error a user can fix, or None for any other.

    Errors raised by C libraries (HDF5) carry their errno only in the message (``errno = 28``);
    it is read from there too. ``path`` is used when the error names none.
    """
    code = exc.errno
    if code is None:
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code not in _OS_FIXES:
        return None
    what, fix = _OS_FIXES[code]
    where = exc.filename if exc.filename is not None else path
    if where is None:
        # HDF5: "... (name = 'x.h5', ...)" on open, "... filename = 'x.h5', ..." on write
        found = re.search(r"\b(?:file)?name = '([^']+)'", str(exc))
        where = found.group(1) if found else None
    return BadInputError(what, path=where, fix=fix)


@contextlib.contextmanager
def os_errors_as_bad_input(path: str | os.PathLike | None = None) -> Iterator[None]:
    """Raise an OS error a user can fix as :func:`os_error`'s :class:`BadInputError`."""
    try:
        yield
    except OSError as exc:
        bad = os_error(exc, path)
        if bad is None:
            raise
        raise bad from None


# ------------------------------------------------------------------------------ paths
def resolve_output(out: str | os.PathLike, option: str = "--out") -> Path:
    """The output path with symlinks followed, checked before anything is written.

    ``option``: how the fixes name the output (``--json``, ``OUT``).

    Refused (one :class:`BadInputError` naming the path and the fix): the current folder or a
    folder above it (``--out .``; the lock and ``--overwrite`` would reach outside), the root
    folder, a path whose parent is a file, a place that cannot be written (permissions,
    read-only file system).
    """
    typed = Path(out)
    path = Path(os.path.realpath(typed))
    cwd = Path.cwd().resolve()
    if not path.name or path == cwd or path in cwd.parents:
        raise BadInputError("the output would be the current folder or a folder above it",
                            path=typed, fix=f"name a new folder or file, e.g. {option} ./run1")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInputError("a parent of the output is a file, not a folder", path=ancestor,
                            fix=f"choose another {option}, or move the file away")
    for place in (ancestor, path):
        if place.exists() and not os.access(place, os.W_OK):
            raise BadInputError("cannot write here (permission denied or read-only file "
                                "system)", path=place,
                                fix="choose an output in a folder you may write")
    return path


def remove_temp_files(path: Path) -> int:
    """Delete the temporary files a killed run left: under a folder output (recursively), or
    beside a file output (``.tmp-<name>.*``). Returns how many."""
    if path.is_dir():
        return remove_stale_temp_files(path, recursive=True)
    return remove_stale_temp_files(path.parent, [path.name])


# ------------------------------------------------------------------------------ compatibility
def differences(saved: Mapping[str, Any], now: Mapping[str, Any],
                may_change: Iterable[str] = ()) -> list[str]:
    """The keys (other than ``may_change``) whose values differ between two resolved configs."""
    skip = set(may_change)
    keys = (set(saved) | set(now)) - skip
    return sorted(k for k in keys if saved.get(k) != now.get(k))


def comparable(resolved: Mapping[str, Any], may_change: Iterable[str] = ()) -> dict[str, Any]:
    """``resolved`` without the fields that may change on resume (what a fingerprint hashes)."""
    skip = set(may_change)
    return {k: v for k, v in resolved.items() if k not in skip}


def read_record(path: Path) -> dict[str, Any]:
    """A saved record (YAML, or JSON for ``.json``) that pseudolabel wrote; a damaged one is a
    :class:`BadInputError` naming the file."""
    from pseudolabel.config import load_config_file

    try:
        return load_config_file(path)
    except BadInputError as exc:
        raise BadInputError(f"saved configuration is damaged ({exc.message})", path=path,
                            fix="add --overwrite to start over, or choose another --out") from None


def _show(diff: Sequence[str], saved: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:4]) + (
        " ..." if len(diff) > 4 else "")


@dataclass
class Claim:
    """A claimed output: its resolved ``path`` and what was found there.

    ``previous``: "none" (nothing, or a record without outputs), "same" (a run with a
    compatible config: resume it) or "replaced" (cleared by ``overwrite``).
    """

    path: Path
    previous: Literal["none", "same", "replaced"]

    @property
    def resume(self) -> bool:
        return self.previous == "same"


def folder_entries(out: Path) -> list[Path]:
    """Every entry of a folder output (the default ``outputs``): the whole folder is the run's."""
    return sorted(out.iterdir()) if out.is_dir() else []


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _remove_empty_folders(out: Path) -> None:
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def claim_output(
    out: str | os.PathLike,
    *,
    kind: Literal["folder", "file"] = "folder",
    record: Sequence[str] = (),
    resolved: Mapping[str, Any] | object | None = None,
    may_change: Iterable[str] = (),
    overwrite: bool = False,
    outputs: Outputs = folder_entries,
    main: bool = True,
    option: str = "--out",
    ours: Callable[[Path], bool] | None = None,
) -> Iterator[Claim]:
    """Claim the output ``out`` of a stage for the ``with`` block (see the module docstring).

    Args:
        kind: a folder output (made here) or a file output (its parent made here).
        record: names (in the folder) of the files the stage saves its resolved config in;
            the first is YAML (replayable), the others YAML or JSON; compared, as one mapping,
            with ``resolved``. Empty: no compatibility check (outputs are simply replaced).
        resolved: this run's resolved config (a mapping, or a config dataclass).
        may_change: the config class's ``RESUME_MAY_CHANGE``: fields left out of the comparison.
        overwrite: replace a previous run of another configuration (its outputs are deleted).
        outputs: the stage's own outputs present in a folder (besides the record); for a file
            output, the paths that belong to it (the file, sidecars, a parts folder: none by
            default), deleted by ``overwrite``.
        main: False on the non-zero ranks of a distributed run: they check, but neither lock,
            clean nor delete (rank 0 does).
        option: how the fixes name the output (``--json``, ``OUT``; default ``--out``).
        ours: for a file output, whether an existing file is a previous output of this stage
            (replaced) rather than a file of the user's (refused unless ``overwrite``).
    """
    from pseudolabel.config import to_dict

    path = resolve_output(out, option)
    resolved = to_dict(resolved) if resolved is not None else {}
    lock = RunLock(path) if main else contextlib.nullcontext()
    with os_errors_as_bad_input(path), lock:
        existed = path.exists()
        if kind == "folder" and existed and not path.is_dir():
            raise BadInputError("the output is a file, not a folder", path=path,
                                fix=f"choose another {option}, or move the file away")
        if (kind == "file" and ours is not None and not overwrite and path.is_file()
                and not ours(path)):
            raise BadInputError("the output exists and was not written by this command",
                                path=path, fix=f"choose another {option}, or move the file "
                                               "away")
        if main:
            remove_temp_files(path)
        record_files = [path / name for name in record]

        def own_outputs() -> list[Path]:
            if kind == "file":  # the file and what the stage keeps beside it
                return [p for p in outputs(path) if p.exists() or p.is_symlink()]
            if not path.is_dir():
                return []
            skip = set(record_files)
            return [p for p in outputs(path) if p not in skip]

        previous: Literal["none", "same", "replaced"] = "none"
        found = own_outputs()
        if record and found:
            previous = _previous(path, record_files, resolved, may_change, overwrite)
        elif found and overwrite:
            previous = "replaced"
        if previous == "replaced" and main:
            log.info("--overwrite: removing the previous outputs in %s", path)
            _remove([*found, *(f for f in record_files if f.exists())])
            if kind == "folder":
                _remove_empty_folders(path)
        elif previous == "none" and main:
            _remove(f for f in record_files if f.exists())  # a record without outputs: stale
        if kind == "folder" and main:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield Claim(path, previous)
        except BaseException:
            if main and kind == "folder" and record and not own_outputs():
                # a failed start: nothing written, nothing claimed
                _remove(f for f in record_files if f.exists())
                if not existed:
                    _remove_empty_folders(path)
                    with contextlib.suppress(OSError):
                        path.rmdir()
            raise


def _previous(path: Path, record_files: Sequence[Path], resolved: Mapping[str, Any],
              may_change: Iterable[str], overwrite: bool) -> Literal["same", "replaced"]:
    """Compare the previous run's record with ``resolved``: "same", "replaced" or an error."""
    first = record_files[0]
    if not first.is_file():
        if overwrite:
            return "replaced"
        raise BadInputError(
            f"the folder holds outputs but no {first.name}: they were not made by this stage",
            path=path, fix="choose another --out, or add --overwrite to replace them")
    saved: dict[str, Any] = {}
    try:
        for f in record_files:
            if f.is_file():
                saved.update(read_record(f))
    except BadInputError:
        if overwrite:
            return "replaced"
        raise
    diff = differences(saved, resolved, may_change)
    if overwrite:
        return "replaced"
    if diff:
        raise BadInputError(
            f"the outputs here were made with another configuration (different config: "
            f"{_show(diff, saved, resolved)})",
            path=first, fix="give the same options to resume it, add --overwrite to replace it, "
                            "or choose another --out")
    return "same"
