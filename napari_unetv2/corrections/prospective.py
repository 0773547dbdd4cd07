"""Prospective scores: how well each model version did on the images clinicians corrected while it was
in use. Each accepted correction is a fresh test of the version whose mask was corrected (that
version never saw the image), so these are the numbers to trust, not a score on a few held-out
corrections. Per version: n, mean Dice/IoU and a 95% Student-t interval (engine/intervals.py says why t
and not a bootstrap); one image is shown as one image, never as evidence ("1 image: no interval").

Qt-free and torch-free: the widget, the CLI summary and the retrain routine all read it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional

from ..engine.intervals import MeanInterval, mean_interval
from .correction_set import Correction, CorrectionSet

BUNDLED = "bundled"  # the label for entries without a model version (masks not made by a stored version)


@dataclass(frozen=True)
class ProspectiveScore:
    version: str
    dice: MeanInterval
    iou: MeanInterval
    # (settings the corrected masks were made with, how many): a version's masks at threshold 0.2 with flip TTA and
    # at its defaults are two different tests of it; the score mixed them unsaid (stop note 42). "" = not recorded.
    settings: tuple[tuple[str, int], ...] = ()

    @property
    def n(self) -> int:
        return self.dice.n

    def settings_note(self) -> str:
        """"" when the masks were made with one setting (or none was recorded); else how many with which, e.g.
        ``masks made with 2 settings: 9 at resize, threshold 0.5; 3 at resize, threshold 0.2, flip TTA`` (and ``; 1 not
        recorded`` for masks of records before settings were kept: not counted as a setting of their own, or every
        older set would read as mixed)."""
        known = [(text, count) for text, count in self.settings if text]
        if len(known) < 2:
            return ""
        unknown = sum(count for text, count in self.settings if not text)
        parts = [f"{count} at {text}" for text, count in known] + ([f"{unknown} not recorded"] if unknown else [])
        return f"masks made with {len(known)} settings: " + "; ".join(parts)

    def dice_text(self) -> str:
        """``0.810 [0.740, 0.870] on 12 images``, and the settings note when the masks were made with several."""
        note = self.settings_note()
        return self.dice.describe() + (f" ({note})" if note else "")

    def describe(self) -> str:
        """``v3: Dice 0.810 [0.740, 0.870] on 12 images``; ``v3: Dice 0.977 on 1 image: no interval``."""
        if self.n == 0:
            return f"{self.version}: no prospective score yet (no corrections of its masks)"
        return f"{self.version}: Dice {self.dice_text()}"

    def as_dict(self) -> dict:
        return {"version": self.version, "n": self.n, "dice": self.dice.as_dict(), "iou": self.iou.as_dict(),
                "settings": {text or "not recorded": count for text, count in self.settings},
                "what": "the version's masks against the clinicians' corrections, accepted while it was in use"}


def score_entries(version: str, entries: Iterable[Correction]) -> ProspectiveScore:
    """The prospective score of ``version`` over ``entries`` (those without a score are left out)."""
    scored = [e for e in entries if e.prospective_dice is not None]
    settings = Counter(e.model_settings or "" for e in scored)
    return ProspectiveScore(version, mean_interval([e.prospective_dice for e in scored]),
                            mean_interval([e.prospective_iou for e in scored]),
                            tuple(sorted(settings.items(), key=lambda item: -item[1])))  # (ties: first met first)


def version_scores(correction_set: CorrectionSet) -> dict[str, ProspectiveScore]:
    """{model version: its prospective score} over every scored entry of the set, in first-use order."""
    return scores_by_version(correction_set.entries())


def scores_by_version(entries: Iterable[Correction]) -> dict[str, ProspectiveScore]:
    """:func:`version_scores` of a set's ``entries`` (read once, for more than this)."""
    groups: dict[str, list[Correction]] = {}
    for entry in entries:
        if entry.prospective_dice is not None:
            groups.setdefault(entry.model_version or BUNDLED, []).append(entry)
    return {version: score_entries(version, entries) for version, entries in groups.items()}


def score_of(correction_set: CorrectionSet, version: Optional[str]) -> ProspectiveScore:
    """One version's prospective score (n = 0 when none of its masks were corrected)."""
    key = version or BUNDLED
    return score_entries(key, [e for e in correction_set.entries() if (e.model_version or BUNDLED) == key])
