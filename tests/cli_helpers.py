"""Assertions shared by the CLI tests."""

from __future__ import annotations

from click.testing import Result


def assert_one_line_error(result: Result, *needles: str, code: int = 2) -> str:
    """The command failed with ``code``, printed exactly one 'error:' line and no traceback."""
    text = result.output  # click >= 8.2 interleaves stderr into output
    try:
        err = result.stderr
    except ValueError:  # stderr not captured separately (older click)
        err = ""
    if err and err not in text:
        text += err
    assert result.exit_code == code, f"exit {result.exit_code}: {text}"
    assert "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
