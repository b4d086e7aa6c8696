"""CAMs: the method registry, multi-scale/flip merging and the make-cams stage."""

from pseudolabel.cams.methods import CAM_METHODS, CamMethod, GradientCam, get_method
from pseudolabel.cams.multiscale import multiscale_cams, normalize_max

__all__ = ["CAM_METHODS", "CamMethod", "GradientCam", "get_method", "multiscale_cams",
           "normalize_max"]
