"""The user-facing error type.

Errors that a user can cause (a bad file, an unknown name, a mismatch between inputs) are raised
as :class:`BadInputError` anywhere in the library. The CLI turns them into one line on stderr and
exit status 2 (see ``pseudolabel.cli.main``); Python callers catch them like any exception.
"""

from __future__ import annotations

import os
from pathlib import Path


class PseudolabelError(Exception):
    """Base class of the project's own errors."""

    exit_code = 1


class BadInputError(PseudolabelError):
    """Input a user can fix: names the file (when there is one) and the fix.

    >>> str(BadInputError("cannot decode image", path="a/b.jpg", fix="re-export it as JPEG or PNG"))
    'a/b.jpg: cannot decode image; fix: re-export it as JPEG or PNG'
    """

    exit_code = 2

    def __init__(
        self, message: str, *, path: str | os.PathLike | None = None, fix: str | None = None
    ) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as one line: ``<path>: <message>; fix: <fix>``."""
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        if self.fix:
            text += f"; fix: {self.fix}"
        return " ".join(text.split())


class InterruptedRun(PseudolabelError):
    """A run stopped by the user (Ctrl-C); the message says how to resume."""

    exit_code = 130
