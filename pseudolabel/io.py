"""Safe file output: atomic writes, paths that stay inside their folder, and run locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    except OSError as exc:  # named after the output, not the temporary name it never got
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (
                None, str(tmp_path), tmp_path):
            # a write that failed (disk full, ...): the error names the output, not the temp file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        if isinstance(exc, Exception) and not isinstance(exc, OSError) and _disk_full(path):
            # a writer that hides the OS error (torch.save: "unexpected pos ..."): say what it is
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise


def _disk_full(path: Path) -> bool:
    """Whether the file system of ``path`` has (almost) no space left."""
    try:
        return shutil.disk_usage(path.parent).free < FULL_BELOW
    except OSError:
        return False


FULL_BELOW = 1 << 20  # bytes: a write that failed with less free space than this hit a full disk


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; flush, fsync and rename it onto ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def remove_stale_temp_files(folder: str | os.PathLike, names: Iterable[str] | None = None, *,
                            recursive: bool = False) -> int:
    """Delete the temporary files killed runs left in ``folder``; returns how many.

    Every ``.tmp-*`` file (``names`` None), or only those of the outputs ``names`` (so that a
    run never deletes another run's temporary files beside its own); ``recursive``: in the
    sub-folders too. The one cleanup every stage uses (through :mod:`pseudolabel.runtime`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    patterns = [TMP_PREFIX + "*"] if names is None else [
        f"{TMP_PREFIX}{glob.escape(name)}.*" for name in names]
    count = 0
    for pattern in patterns:
        for p in (folder.rglob(pattern) if recursive else folder.glob(pattern)):
            with contextlib.suppress(OSError):
                p.unlink()
                count += 1
    return count


def read_text(path: str | os.PathLike, what: str, *, fix: str | None = None,
              encoding: str = "utf-8") -> str:
    """The text of a file the user gave; one :class:`BadInputError` naming ``what`` and the file
    when it cannot be read ("cannot read <what> (<reason>)") or is not UTF-8 text (with ``fix``).
    """
    try:
        return Path(path).read_text(encoding=encoding)
    except OSError as exc:
        raise BadInputError(f"cannot read {what} ({exc.strerror})", path=path) from None
    except UnicodeDecodeError:
        raise BadInputError(f"{what} is not UTF-8 text", path=path, fix=fix) from None


_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


def check_image_id(image_id: str, *, source: str | os.PathLike | None = None) -> str:
    """Check that an image id is a relative name that cannot leave its folder.

    Ids may hold sub-folders (``2008/000123``) but no ``..``, no absolute path, no backslash and no
    leading dot. Raises :class:`BadInputError` naming ``source`` (the split file, labels.csv, ...).
    """
    if not _SAFE_ID.fullmatch(image_id) or any(part in ("..", ".") for part in image_id.split("/")):
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


class OutputBusyError(BadInputError):
    """Another run holds the lock of this output (see :class:`RunLock`)."""


class RunLock:
    """An exclusive lock on an output, so that two runs never write the same output at once.

    The lock is keyed on the *resolved* output path (symlinks followed), so ``--out W`` and
    ``--out Wlink`` (a link to ``W``) meet the same lock. The lock file ``<resolved>.lock`` holds
    the owner's pid; the lock is an ``fcntl.flock``, released by the kernel when the process dies
    (also on ``kill -9``). The holder deletes the file when it lets go; a process that opened
    the file just before that deletion and then locks the deleted inode notices (the path no
    longer names its inode) and tries again on the current file, so the lock is never held twice.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(os.path.realpath(target))
        if not self.target.name:
            raise BadInputError("an output cannot be the root folder", path=self.target,
                                fix="name a new folder or file for the output")
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None

    def _holds_current_file(self, fd: int) -> bool:
        """Whether the locked ``fd`` is still the file at :attr:`path` (not a deleted one)."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(1000):  # each retry means another run let go in between: bounded
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise OutputBusyError(
                    f"another run (pid {owner}) is writing this output", path=self.target,
                    fix="wait for it to finish or choose another output") from None
            except BaseException:
                os.close(fd)
                raise
            if self._holds_current_file(fd):
                break
            os.close(fd)  # locked a file its last holder deleted: lock the current one
        else:  # pragma: no cover - a thousand runs starting and ending in between
            raise BadInputError("the output's lock keeps changing hands", path=self.target,
                                fix="wait for the other runs to finish")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)  # disk full: nothing may stay behind
        except BaseException:
            with contextlib.suppress(OSError):  # held: deleting it is safe, as in __exit__
                self.path.unlink()
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            # Deleted while still held: whoever opened it meanwhile sees a stale inode and retries.
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None
