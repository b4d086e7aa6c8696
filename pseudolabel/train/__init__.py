"""Training: teacher-student / co-training of timm classifiers with knowledge transfer.

``run(TrainConfig(...), root, out)`` is the stage; ``ALIGN_LOSSES`` the alignment-loss registry.
Names are imported on first use, so ``pseudolabel.train.config`` stays free of torch.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.train.config import TrainConfig
    from pseudolabel.train.losses import ALIGN_LOSSES, AlignLoss
    from pseudolabel.train.stage import run

__all__ = ["ALIGN_LOSSES", "AlignLoss", "TrainConfig", "run"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "ALIGN_LOSSES": "losses", "AlignLoss": "losses", "TrainConfig": "config", "run": "stage"})
