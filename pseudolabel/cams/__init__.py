"""CAMs: the method registry, multi-scale/flip merging and the make-cams stage.

Names are imported on first use, so ``pseudolabel.cams.config`` stays free of torch.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.cams.methods import CAM_METHODS, CamMethod, GradientCam, get_method
    from pseudolabel.cams.multiscale import multiscale_cams, normalize_max

__all__ = ["CAM_METHODS", "CamMethod", "GradientCam", "get_method", "multiscale_cams",
           "normalize_max"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "CAM_METHODS": "methods", "CamMethod": "methods", "GradientCam": "methods",
    "get_method": "methods", "multiscale_cams": "multiscale", "normalize_max": "multiscale"})
