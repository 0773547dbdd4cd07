"""What a version's JSON says of its scores, in one line: ``unetv2 models`` prints it per version, and *Correct &
retrain*'s "last round" line shows the newest round's after napari restarts (it showed "-" until a round ran in this
process: stop note 41's list)."""
from __future__ import annotations

import math
from typing import Optional

from ..files.times import UNKNOWN, instant, shown, stamp_of


def scores_note(metrics: object) -> str:
    """What a version's JSON says of its scores, for ``models`` (choosing which version to use had nothing to go by,
    stop 29's list): a retrain round's held-out images (the parent's Dice and its own, on images neither trained on)
    and original-domain check, or a trained run's validation Dice at the epoch chosen on it."""
    if not isinstance(metrics, dict):
        return ""

    def number(value: object) -> Optional[float]:  # a JSON's: 1e400 overflowed float(), NaN printed as "nan"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        try:
            value = float(value)
        except OverflowError:
            return None
        return value if math.isfinite(value) else None

    def dice(summary: object) -> Optional[float]:
        return number(summary.get("dice")) if isinstance(summary, dict) else None

    notes = []
    before, after = dice(metrics.get("held_out_before")), dice(metrics.get("held_out_after"))
    if after is not None:
        n = metrics["held_out_after"].get("n")
        images = f" on {n} held-out images" if isinstance(n, int) and not isinstance(n, bool) else " held out"
        notes.append(f"Dice {'' if before is None else f'{before:.3f} (parent) -> '}{after:.3f}{images}")
    reference = metrics.get("reference")
    if isinstance(reference, dict) and dice(reference.get("new")) is not None:
        parent = dice(reference.get("parent"))
        notes.append(f"original-domain samples {'' if parent is None else f'{parent:.3f} -> '}"
                     f"{dice(reference.get('new')):.3f}")
    elif isinstance(metrics.get("reference_note"), str):  # why there is no original-domain check
        notes.append(metrics["reference_note"])
    val = number(metrics.get("val_dice"))
    if not notes and val is not None:
        chosen = " (the epoch chosen on it)" if metrics.get("selected_on") == "validation" else ""
        notes.append(f"validation Dice {val:.3f}{chosen}")
    # which version is in use and why was answered by model.json alone (trial of session 41)
    adoption = metrics.get("adoption")
    if isinstance(adoption, dict) and isinstance(adoption.get("reason"), str):
        notes.append(f"round's decision: {adoption['reason']}")
    return "".join(f"; {note}" for note in notes)


def _model_named(version: Optional[str]) -> str:
    """A model in use as the widgets name it: ``bundled skin model (d1951362bbcb)``, ``version 1838da602d39``."""
    from .checkpoint import DEFAULT_BUNDLED
    from .lines import bundled_versions

    by_version = bundled_versions()
    shipped = {name: version for version, name in by_version.items()}
    name = by_version.get(version) if version else DEFAULT_BUNDLED
    if name is not None:
        return f"bundled {name} model ({shipped.get(name, '?')})"
    return f"version {version}"


def last_round_line(store) -> str:
    """The newest retrain round's version in ``store`` (a :class:`ModelStore`) with what its JSON says of its scores
    and of the round's decision; "-" when no round made a version."""
    rounds = [config for config in store.versions()
              if isinstance(config.metrics, dict) and isinstance(config.metrics.get("adoption"), dict)]
    if not rounds:
        return "-"

    def saved_at(config) -> object:
        return config.training.get("saved_at") if isinstance(config.training, dict) else None

    def made(config) -> float:  # when its weights were saved, as recorded; else when it joined the store (a copy's date)
        recorded = instant(saved_at(config))
        return recorded if recorded != UNKNOWN else store.added_time(config.version)

    newest = max(rounds, key=lambda config: (made(config), config.version))
    made_at = made(newest)
    when = shown(saved_at(newest) if instant(saved_at(newest)) != UNKNOWN else stamp_of(made_at) if made_at else None)
    line = f"version {newest.version} (made {when}): {scores_note(newest.metrics).removeprefix('; ') or 'no scores'}"
    in_use = store.current
    # a decision to put it in use read as today's after a Roll back (clinician trial of session 43)
    if newest.metrics["adoption"].get("adopt") is True and in_use != newest.version:
        line += f"; since then, {_model_named(in_use)} in use"
    return line
