"""One retrain round run from a widget (Correct & retrain, or the session's automatic retrain): the
worker job around :func:`retrain_events`, and the rule that decides whether the new version is used."""
from __future__ import annotations

import contextlib
import math
import re
import threading
from typing import Optional

from ..corrections import CorrectionSet
from ..corrections.retrain import retrain_events

VERSION_ID = re.compile(r"[0-9a-f]{12}")  # a model version's id (checkpoint.content_version)


def fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def round_job(store, corrections: CorrectionSet, cancel: threading.Event, background: bool = False, **params):
    """A generator for a napari worker: yields training events, returns the RetrainOutcome (None if cancelled).

    ``background``: the user goes on working in the viewer meanwhile (the annotation session), so the round
    leaves one core to the GUI thread (napari draws with the CPU under llvmpipe; a round on every core made
    each image change 20-40 ms later). A round the user waits for uses every core torch would."""

    def job():
        from ..inference.threads import cpu_threads

        threads = cpu_threads() if background else contextlib.nullcontext()
        with threads, contextlib.closing(retrain_events(store, corrections, should_stop=cancel.is_set, **params)) as events:
            while True:
                try:
                    event = next(events)
                except StopIteration as finished:
                    return finished.value
                yield event
                if cancel.is_set():
                    return None  # closing() runs the routine's clean-up in this thread

    return job


def describe_scores(result) -> str:
    """The round's held-out figures, each with its n and 95% interval; with few corrections there is no
    held-out part (every correction trains) and the trustworthy score is the prospective one."""
    from ..engine.intervals import MeanInterval

    if not result.held_out:
        held_out = ("no held-out part: every correction of the line trained (the prospective score on the model line is "
                    "the one to trust)")
    else:
        before, after = MeanInterval.from_summary(result.before), MeanInterval.from_summary(result.after)
        held_out = f"held-out Dice {before.describe()} -> {after.describe()}"
    return with_reference(held_out, result)


def with_reference(text: str, result) -> str:
    """``text``, then the round's original-domain check (:func:`describe_reference`) when it has one."""
    return "; ".join(filter(None, (text, describe_reference(result))))


def describe_reference(result) -> str:
    """The round's original-domain check as the CLI prints it ("" when the round had none): the README promised it to
    the user, and only ``unetv2 finetune`` and ``unetv2 models`` showed it (trial of session 36)."""
    from ..engine.intervals import MeanInterval

    if not result.reference:
        return result.reference_note
    before = MeanInterval.from_summary(result.reference["parent"])
    after = MeanInterval.from_summary(result.reference["new"])
    return (f"original domain ({result.reference['set'].split(' (')[0]}, {after.n}): Dice {before.mean:.3f} before, "
            f"{after.mean:.3f} after")


def adopt(models, outcome) -> Optional[str]:
    """Put a round's new version in use, unless the user moved the model in use while the round trained (Roll back,
    Use this version, another window): their choice stands and the new version stays in the versions list.
    Returns None when it was put in use, else what to say."""
    in_use = models.version_id()
    if outcome.config.version == outcome.config.parent:  # (said as another window's round: stop note 40)
        return (f"the round's weights are those it started from ({models.label(outcome.config.version)}): nothing "
                "changed" + ("" if in_use == outcome.config.version else
                             f"; the model in use, {models.label()}, stays in use"))
    if in_use == outcome.config.version:  # another window's round, on the same corrections and seed, made the same
        # weights and put them in use first: "not put in use ('Use this version')" was said of the version in use
        return (f"stored as {models.label(outcome.config.version)}, in use already: another window's round made the "
                "same version meanwhile (the same corrections and settings)")
    if in_use != outcome.config.parent:
        return (f"stored as {models.label(outcome.config.version)}, not put in use: the model in use changed to "
                f"{models.label()} while the round trained ('Use this version' to choose it)")
    models.use(outcome.config.version)
    return None


def split_by_line(models, corrections: CorrectionSet) -> tuple[list, list]:
    """(the corrections a round of the model in use trains on, those it leaves out: made with a known model of another
    line, e.g. the skin model's while the polyp line is in use; see ``checkpoints/lines.py``)."""
    return models.lines().split(corrections.entries(), models.version_id())


def left_out(models, others: list) -> str:
    """The corrections a round leaves out, said ("" when none): "8 made with bundled polyp model (...) left out"."""
    return f"{len(others)} made with {models_of(models, others)} left out" if others else ""


def trained_on(models, ours: list, others: list) -> str:
    """What a round trained on, said with its result: a skin round on 1 of 9 corrections (8 tagged with the polyp
    model's line) ended on "trained on every correction of its line" with no count (verification of session 32)."""
    said = f"trained on {len(ours)} correction(s) of its line"
    # masks made with versions this store does not hold (another workstation's, on a shared set) count as this line's:
    # nothing says they belong elsewhere, but the user is told (trial of session 40: unsaid)
    known = models.lines().parents
    unknown = sum(1 for entry in ours if VERSION_ID.fullmatch(entry.model_version or "") and entry.model_version not in known)
    if unknown:
        said += f" ({unknown} of them made with model versions this store does not hold: another workstation's?)"
    return f"{said}; {left_out(models, others)} (another model's line)" if others else said


def models_of(models, entries: list) -> str:
    """The models that made ``entries``, by their one name each."""
    labels = sorted({models.label(version) for version in {e.model_version for e in entries}})  # once per model
    return ", ".join(labels[:2]) + (f" and {len(labels) - 2} more" if len(labels) > 2 else "")


def changed_note(changed: list) -> str:
    """How much the new model changed the masks it replaced: ``; masks replaced: 2 changed (IMG_1 by 3.1 % of its
    pixels, IMG_2 by 0.4 %), 1 unchanged`` ("" when none was replaced)."""
    if not changed:
        return ""
    moved = sorted((item for item in changed if item[1]), key=lambda item: -item[1] / item[2])
    same = len(changed) - len(moved)
    parts = [f"{name} by {100 * count / size:.1f} %" + (" of its pixels" if i == 0 else "")
             for i, (name, count, size) in enumerate(moved[:3])]
    more = f" and {len(moved) - 3} more" if len(moved) > 3 else ""
    said = f"{len(moved)} changed ({', '.join(parts)}{more})" if moved else ""
    return "; masks replaced: " + ", ".join(filter(None, (said, f"{same} unchanged" if same else "")))
