"""pseudolabel: pixel-level pseudo-masks from image-level labels (WSSS stages 1-3).

The package is importable without torch: the dataset layer, evaluation and the CLI's
``--help`` stay torch-free; the stages that need torch import it themselves.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
