"""The annotation session over a folder (which image, what was decided, where finished masks are) and
storing a correction without duplicates. Qt-free: the session widget is a thin layer over this."""
from .accept import DuplicateCorrection, StoredCorrection, WouldDiscardCorrection, WouldReplaceCorrection, store_correction
from .session import AnnotationSession

__all__ = ["AnnotationSession", "DuplicateCorrection", "StoredCorrection", "WouldDiscardCorrection", "WouldReplaceCorrection",
           "store_correction"]
