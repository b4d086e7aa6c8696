"""Safe file output: atomic writes, paths that stay inside their folder, and run locks."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pseudolabel.errors import BadInputError

TMP_PREFIX = ".tmp-"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception (or a kill) the target is untouched and the temporary file is removed
    (or, after a kill, left with the ``.tmp-`` prefix for :func:`remove_stale_temp_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; flush, fsync and rename it onto ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Delete temporary files left by a killed run in ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    count = 0
    for p in folder.glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            p.unlink()
            count += 1
    return count


_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")


def check_image_id(image_id: str, *, source: str | os.PathLike | None = None) -> str:
    """Check that an image id is a relative name that cannot leave its folder.

    Ids may hold sub-folders (``2008/000123``) but no ``..``, no absolute path, no backslash and no
    leading dot. Raises :class:`BadInputError` naming ``source`` (the split file, labels.csv, ...).
    """
    if not _SAFE_ID.match(image_id) or any(part in ("..", ".") for part in image_id.split("/")):
        raise BadInputError(
            f"image id {image_id!r} is not a plain relative name",
            path=source,
            fix="use ids made of letters, digits, '_', '-', '.' (no '..', no absolute paths)",
        )
    return image_id


def output_path(out_dir: str | os.PathLike, image_id: str, suffix: str) -> Path:
    """``out_dir/<image_id><suffix>``, guaranteed to lie inside ``out_dir``."""
    check_image_id(image_id)
    root = Path(out_dir).resolve()
    path = (root / (image_id + suffix)).resolve()
    if root != path and root not in path.parents:
        raise BadInputError(f"image id {image_id!r} would write outside {root}")
    return path


class RunLock:
    """An exclusive lock on an output, so that two runs never write the same output at once.

    The lock file ``<target>.lock`` holds the owner's pid; the lock is an ``fcntl.flock``, so it is
    released by the kernel when the process dies (also on ``kill -9``).
    """

    def __init__(self, target: str | os.PathLike) -> None:
        target = Path(target)
        self.path = target.with_name(target.name + ".lock")
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise BadInputError(
                f"another run (pid {owner}) is writing this output",
                path=self.path.with_name(self.path.name[: -len(".lock")]),
                fix="wait for it to finish or choose another output",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._fh.close()
            self._fh = None
