"""Refiners from another package: the ``pseudolabel.refiners`` entry-point group, and --list."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.refine import REFINERS, create_refiner, describe_refiners, to_mask

PLUGIN = '''
from dataclasses import dataclass

import numpy as np

from pseudolabel.refine import Refiner, with_foreground


class Gain(Refiner):
    """Multiply the foreground scores."""

    name = "gain"
    description = "multiply the foreground scores by a factor"

    @dataclass(frozen=True)
    class Params:
        factor: float = 2.0

    def refine(self, state):
        return with_foreground(state, np.clip(state.scores[1:] * self.params.factor, 0.0, 1.0))
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution 'fakeplug' whose entry points add 'gain' (and a broken one)."""
    (tmp_path / "fakeplug_mod.py").write_text(PLUGIN)
    info = tmp_path / "fakeplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [pseudolabel.refiners]
        gain = fakeplug_mod:Gain
        broken = fakeplug_missing_module:Nothing
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    # A fresh view of the registry for this test: entry points are read again, then forgotten.
    monkeypatch.setattr(REFINERS, "_entries", dict(REFINERS._entries))
    monkeypatch.setattr(REFINERS, "_loaded_entry_points", False)


def test_entry_point_adds_a_refiner(plugin: None, state_factory,
                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        names = REFINERS.names()
    assert "gain" in names and {"threshold", "fusion", "gmm"} <= set(names)
    assert "broken" not in names and "broken" in caplog.text  # logged, built-ins unharmed
    refiner = create_refiner("gain:factor=3")
    assert refiner.params.factor == 3.0
    state = state_factory(1)
    out = refiner.refine(state)
    np.testing.assert_allclose(out.scores[1:], np.clip(state.scores[1:] * 3.0, 0, 1))
    assert to_mask(out).shape == state.size
    assert "gain: multiply the foreground scores by a factor" in describe_refiners()


def test_entry_point_is_unknown_without_the_plugin() -> None:
    assert "gain" not in REFINERS.names()


def test_cli_list_prints_every_refiner_with_parameters(plugin: None) -> None:
    result = CliRunner().invoke(cli, ["refine", "--list"])
    assert result.exit_code == 0, result.output
    for name in REFINERS.names():
        assert f"{name}: " in result.output
    assert "factor: float = 2.0" in result.output
    assert "t: float = 0.3" in result.output
    assert "needs: all_keys" in result.output
