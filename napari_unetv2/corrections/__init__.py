"""The correct-and-retrain loop: the correction set on disk and one retrain round on it.

``retrain`` (torch, the training engine) is imported on first use, so that opening a correction set
does not load the training stack.
"""
from .correction_set import Correction, CorrectionSet

__all__ = ["Correction", "CorrectionSet"]
