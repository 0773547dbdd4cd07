"""One retrain round run from a widget (Correct & retrain, or the session's automatic retrain): the
worker job around :func:`retrain_events`, and the rule that decides whether the new version is used."""
from __future__ import annotations

import contextlib
import math
import threading

from ..corrections import CorrectionSet
from ..corrections.retrain import retrain_events


def fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def round_job(store, corrections: CorrectionSet, cancel: threading.Event, **params):
    """A generator for a napari worker: yields training events, returns the RetrainOutcome (None if cancelled)."""

    def job():
        with contextlib.closing(retrain_events(store, corrections, **params)) as events:
            while True:
                try:
                    event = next(events)
                except StopIteration as finished:
                    return finished.value
                yield event
                if cancel.is_set():
                    return None  # closing() runs the routine's clean-up in this thread

    return job


def should_adopt(config) -> bool:
    """Never switch to a model that scored worse on the held-out corrections without being asked."""
    before = config.metrics.get("held_out_before", {}).get("dice")
    after = config.metrics.get("held_out_after", {}).get("dice")
    return before is None or after is None or after >= before


def describe_scores(result) -> str:
    before, after = result.before.get("dice"), result.after.get("dice")
    if before is None:
        return "no held-out corrections (accept 3 or more to score)"
    return f"{before:.3f} -> {after:.3f} on {len(result.held_out)} held-out image(s)"
