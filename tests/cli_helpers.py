"""Assertions shared by the CLI tests."""

from __future__ import annotations

from click.testing import Result


def assert_one_line_error(result: Result, *needles: str, code: int = 2) -> str:
    """The command failed with ``code``, printed exactly one 'error:' line and no traceback."""
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, f"exit {result.exit_code}: {text}"
    assert "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
