"""Device checks: one-line errors for unknown or unavailable devices."""

from __future__ import annotations

import pytest
import torch

from pseudolabel.errors import BadInputError
from pseudolabel.ops import check_device, resolve_device


def test_check_device() -> None:
    check_device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_device("cuda:0")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BadInputError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
    else:
        with pytest.raises(BadInputError, match="no CUDA device"):
            resolve_device("cuda")
