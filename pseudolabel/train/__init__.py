"""Training: teacher-student / co-training of timm classifiers with knowledge transfer.

``run(TrainConfig(...), root, out)`` is the stage; ``ALIGN_LOSSES`` the alignment-loss registry.
"""

from pseudolabel.train.config import TrainConfig
from pseudolabel.train.losses import ALIGN_LOSSES, AlignLoss
from pseudolabel.train.stage import run

__all__ = ["ALIGN_LOSSES", "AlignLoss", "TrainConfig", "run"]
