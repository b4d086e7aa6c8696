"""timm classifiers with exact CAMs, and their checkpoints."""

from pseudolabel.models.checkpoint import (
    check_same_classes,
    load_checkpoint,
    load_run,
    read_checkpoint,
    read_tagged,
    save_checkpoint,
)
from pseudolabel.models.classifier import FEATURES, Classifier, LayerInfo, create_classifier

__all__ = [
    "FEATURES",
    "Classifier",
    "LayerInfo",
    "check_same_classes",
    "create_classifier",
    "load_checkpoint",
    "load_run",
    "read_checkpoint",
    "read_tagged",
    "save_checkpoint",
]
