"""Click corrections: positive/negative clicks and a box that edit a mask from the model's probability map.

Qt-free and, except for :mod:`.box` (one model pass), torch-free: the widget, the benchmark and the tests
drive the same :class:`ClickSession`.
"""
from .session import CLICKS_METADATA, ClickSession, Edit
from .simulate import SimulatedClick, next_click

__all__ = ["CLICKS_METADATA", "ClickSession", "Edit", "SimulatedClick", "next_click"]
