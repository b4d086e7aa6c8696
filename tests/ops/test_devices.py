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


@pytest.mark.parametrize("name", ["mps", "meta", "xpu", "cuda:99"])
def test_devices_torch_accepts_but_cannot_use_here_are_refused(name: str) -> None:
    """torch.device() accepts these names on any machine and fails only when a tensor is moved
    there (a RuntimeError traceback from the CLI); both checks refuse them up front."""
    if name == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    if name == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    with pytest.raises(ValueError, match=f"device '{name}'"):
        check_device(name)
    with pytest.raises(BadInputError, match=f"device '{name}'"):
        resolve_device(name)


def test_device_index_beyond_the_gpus_is_refused() -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        pytest.skip("needs a CUDA device")
    resolve_device(f"cuda:{count - 1}")
    check_device(f"cuda:{count - 1}")
    with pytest.raises(BadInputError, match=f"no CUDA device {count}"):
        resolve_device(f"cuda:{count}")
    with pytest.raises(BadInputError, match=f"no CUDA device {count}"):
        resolve_device("cuda", local_rank=count)
