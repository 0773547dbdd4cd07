"""Batch: segment every image of a folder into OUT/<stem>.png with a chosen model (same runner as
``unetv2 predict``), in a worker with progress and cancel; the results can be opened as mask layers."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Optional, Sequence

import numpy as np
from magicgui.widgets import CheckBox, FileEdit, PushButton

from ..annotation.accept import images_with_corrections
from ..errors import EXPECTED_ERRORS
from ..inference.batch import possible_outputs, predict_folder
from ..remembered import offer, remember
from ._base import WorkerWidget, named_few, one_line
from .segment import chosen_model, follow_fine_tuned, model_chooser

OPEN_AT_MOST = 20
OPEN_WAIT_S = 20  # the worker waits this long at most for the GUI thread to add a pair (its dock closed: it stops)


@dataclass
class ResultPair:
    """One result read to be opened: its summary row, image, mask, image key and the edits kept for it."""
    row: dict
    image: np.ndarray
    rgb: bool
    mask: np.ndarray
    key: str
    kept: object = None  # a KeptEdit painted on this image's mask before (napari closed, never accepted)
    path: Optional[Path] = None  # the image's file
    made_by: Optional[dict] = None  # a kept mask's: the summary row of the earlier run that made it


@dataclass
class ResultsRead:
    """What :func:`read_results` read: the pairs, the files it could not read, and how many results there were."""
    pairs: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    total: int = 0  # results with an image and a mask file (beyond OPEN_AT_MOST too), those open already aside
    new: int = 0  # of ``total``, those this run made (the others an earlier run's)
    already: int = 0  # results whose image is open with a mask (not read)
    stopped: bool = False  # cancelled while reading: the pairs read are opened, the rest not


def mask_file_of(output: Path, row: dict) -> Optional[Path]:
    """A row's mask file, as the runner names it: ``<stem>.png``, or a stack's multi-page ``<stem>.tif`` (a clip's
    result was left out, unsaid: trial of session 38)."""
    return next((p for p in possible_outputs(output, Path(row["file"]).stem, False) if p.is_file()), None)


def read_pairs(summary, source: Path, open_stems: Collection[str], kept_store=None,
               should_stop: Optional[Callable[[], bool]] = None, result: Optional[ResultsRead] = None):
    """Read the run's results to open, one pair at a time (the first OPEN_AT_MOST of its masks with their images,
    this run's first, then those an earlier run left), without touching the viewer: a worker reads them, the GUI
    thread only adds layers (read in the GUI thread, a few pairs with a clip held the window 2-4 s: session 38).
    ``open_stems``: images open with a mask already (not read). Image and mask are both read before either is
    yielded: an image is never opened without its mask. ``result`` takes the counts, the files not read, and whether
    ``should_stop`` stopped it."""
    from ..corrections.correction_set import image_hash
    from ..files import read_image, read_mask_of_shape

    result = result if result is not None else ResultsRead()
    # a folder finished yesterday, run again with "open the results" to correct them, opened nothing and said
    # nothing (trial of session 31): "skipped-done" rows count too
    done = [row for status in ("done", "skipped-done") for row in summary.rows if row["status"] == status
            and mask_file_of(summary.output, row) is not None and (source / row["file"]).is_file()]
    todo = [row for row in done if Path(row["file"]).stem not in open_stems]
    result.already, result.total = len(done) - len(todo), len(todo)
    result.new = sum(1 for row in todo if row["status"] == "done")
    for row in todo[:OPEN_AT_MOST]:
        if should_stop is not None and should_stop():
            result.stopped = True
            return
        stem = Path(row["file"]).stem
        try:
            image = read_image(source / row["file"])
            rgb = image.ndim in (3, 4) and image.shape[-1] in (3, 4)  # (a colour clip is (N, H, W, 3))
            mask = read_mask_of_shape(mask_file_of(summary.output, row), image.shape[:-1] if rgb else image.shape)
        except Exception as err:  # noqa: BLE001 (changed on disk since the run, too large for memory: said, the others
            # opened; an error escaping here lost the whole run's report: cold review of session 39)
            result.unreadable.append(f"{stem} ({one_line(err)})")
            continue
        key = image_hash(image)
        try:
            kept = kept_store.find(key, mask.shape) if kept_store is not None else None
        except (ValueError, OSError):  # (the kept edits unreadable: the file's mask is opened)
            kept = None
        yield ResultPair(row, image, rgb, mask, key, kept, source / row["file"],
                         summary.kept_rows.get(row["file"]) if row["status"] == "skipped-done" else None)


def read_results(summary, source: Path, open_stems: Collection[str], kept_store=None,
                 should_stop: Optional[Callable[[], bool]] = None) -> ResultsRead:
    """:func:`read_pairs`, all of them read (in ``pairs``)."""
    result = ResultsRead()
    result.pairs = list(read_pairs(summary, source, open_stems, kept_store, should_stop, result))
    return result


@dataclass
class Opening:
    """Opening a run's results in the viewer, pair by pair: what was added and what is to be said of it."""
    keeper: object
    open_now: set  # images open with a mask when it began (not opened twice)
    said_corrected: Collection[str] = ()
    added: list = field(default_factory=list)  # image, mask, image, mask...
    restored: list = field(default_factory=list)
    corrected: list = field(default_factory=list)
    older: list = field(default_factory=list)
    earlier_runs: int = 0  # of those opened, masks an earlier run wrote
    skipped: int = 0  # pairs read and not opened: their image was opened with a mask meanwhile


class BatchWidget(WorkerWidget):
    def __init__(self, napari_viewer=None, store_dir=None):
        super().__init__(napari_viewer, store_dir)
        self.input = FileEdit(label="input folder", mode="d", tooltip="The folder of images to segment.")
        self.output = FileEdit(label="output folder", mode="d",
                               tooltip="Where <stem>.png masks and summary.csv go (not the input folder).")
        self.model_source, self.checkpoint = model_chooser(self)
        self.probabilities = CheckBox(text="also save probabilities (TIFF)", value=False,
                                      tooltip="Also write <stem>_prob.tif (float probabilities).")
        self.resume = CheckBox(text="continue: skip finished images", value=True,
                               tooltip="Skip images whose outputs exist; unticked, a folder with results is refused "
                                       "(nothing is ever overwritten).")
        self.open_results = CheckBox(text="open the results in the viewer", value=False,
                                     tooltip="When the run ends, open each new mask over its image (the first "
                                             f"{OPEN_AT_MOST}; only the first pair visible).")
        self.run_button = PushButton(text="Run", tooltip="Segment every image of the input folder in the background.")
        self._start_buttons = [self.run_button]
        self.extend([self.input, self.output, self.model_source, self.checkpoint, self.probabilities, self.resume,
                     self.open_results, self.run_button])
        self.add_common()
        self.run_button.changed.connect(self.run)
        offer(self.input, "batch.input")  # the folders of the last run (--continue finishes it with one press)
        offer(self.output, "batch.output")
        # ... the output with its own input only: another input run into yesterday's output with "continue" ticked kept
        # that folder's masks for every image of the same name (IMG_0001.JPG), and opened them over the new images
        # (cold review of session 39)
        self._offered = (str(self.input.value), str(self.output.value))
        self.input.changed.connect(self._on_input_chosen)
        self.last_summary = None
        self._opening: Optional[Opening] = None  # the results being opened, pair by pair, while the run's worker reads

    def model_choice(self):
        return chosen_model(self, self.model_source, self.checkpoint)

    def _on_input_chosen(self, _=None) -> None:
        offered_input, offered_output = self._offered
        if offered_output not in ("", ".") and str(self.output.value) == offered_output \
                and str(self.input.value) != offered_input:
            # (the last run's output, offered for the last run's input: one is chosen for this one; the field's text is
            # emptied, as FileEdit.value = "" would name the working folder)
            self.output.line_edit.value = ""
            self.say("another input folder: choose its output folder (the one offered was the last run's)")

    def _on_model_changed(self) -> None:
        super()._on_model_changed()
        if not self.closed:
            follow_fine_tuned(self, self.model_source)

    def run(self, _=None):
        if self.busy:
            return None
        source, target = Path(self.input.value), Path(self.output.value)
        if str(self.input.value) in ("", ".") or str(self.output.value) in ("", "."):
            self.say("choose an input folder and an output folder")
            return None
        if not source.is_dir():
            self.say(f"input folder not found: {source} (moved, renamed or unplugged?)")
            return None
        choice = self.model_choice()
        if isinstance(choice, Path) and not choice.is_file():
            self.say(f"checkpoint not found: {choice}")
            return None
        remember(batch__input=source, batch__output=target)
        device, save_prob, resume = self.device.value, bool(self.probabilities.value), bool(self.resume.value)
        models, signals, cancel = self.models, self._signals, self._cancel
        self.refresh_model_line()

        corrections_dir = self.models.corrections_dir
        # the results to open are read in the worker (the GUI thread only adds the layers): which images are open with
        # a mask, and the kept edits' store, are taken here, in the GUI thread
        to_open = bool(self.open_results.value) and self.viewer is not None
        open_stems, kept_store = (self._open_with_mask(), self._kept_store()) if to_open else ((), None)

        added = threading.Event()  # the GUI thread added the pair handed over last
        self._opening = None

        # napari's Quit: the run went on to the folder's end, and the opening waited for a GUI thread that was waiting
        # for it (60 s; cold review of session 39)
        stop_asked = self.stop_asked

        def job():
            try:
                predictor = models.predictor(models.checkpoint(choice), device)
                summary = predict_folder(predictor, source, target, save_probabilities=save_prob, resume=resume,
                                         progress=lambda done, total, name: signals.advanced.emit(done, total, f"{done}/{total}: {name}"),
                                         should_stop=stop_asked, checking=lambda done, total: signals.advanced.emit(
                                             done, total, f"checking the masks already there: {done} of {total}"))
            except EXPECTED_ERRORS as err:  # a full disk, a read-only folder, ...: one line in the status
                return err
            # a Cancel that stopped the run does not stop the opening of what it finished (it opened nothing, and said
            # "cancelled while opening the results": cold review of session 39); a press from now on does
            cancel.clear()
            written = [row["file"] for row in summary.rows if row["status"] == "done"]
            try:
                corrected = images_with_corrections(corrections_dir, source, written)
            except (OSError, ValueError):  # (the set unreadable: the run's own message is what matters)
                corrected = []
            read = None
            if to_open:
                if corrections_dir is not None:
                    try:  # read here, the GUI thread finds them cached
                        from ._state import corrections_by_image

                        corrections_by_image(corrections_dir)
                    except (OSError, ValueError):
                        pass
                read = ResultsRead()
                # one pair at a time, each added by the GUI thread before the next is handed over: 20 pairs added in one
                # go held the window 9-12 s (napari builds each layer's view: clinician trial of session 39); now it
                # answers between pairs, the progress bar counts them, and Cancel stops the opening
                for index, pair in enumerate(read_pairs(summary, source, open_stems, kept_store, stop_asked, read)):
                    signals.advanced.emit(index + 1, min(read.total, OPEN_AT_MOST),
                                          f"opening the results: {index + 1} of {min(read.total, OPEN_AT_MOST)}")
                    added.clear()
                    yield pair
                    waited = time.monotonic()
                    while not added.wait(0.05):
                        if stop_asked() or time.monotonic() - waited > OPEN_WAIT_S:  # (its dock closed: given up)
                            read.stopped = True
                            break
                    if read.stopped:
                        break
            return summary, corrected, read

        # named as every widget names it (the summary's name is the checkpoint file's description, for the CLI: a
        # model fine-tuned on skin was "polyp-default-finetuned [...]" here and "fine-tuned 188e3a0d693d" elsewhere)
        label = self.models.label(choice)

        def on_pair(pair: ResultPair) -> None:
            try:
                if self._opening is None:
                    self._opening = self._start_opening()
                self._add_pair(self._opening, pair)
            finally:
                added.set()

        return self.start_work(job, lambda result: self._on_done(result[0], source, label, corrected=result[1],
                                                                 read=result[2]), "loading model...", on_event=on_pair)

    def _open_with_mask(self) -> set:
        """The names of the images open with a mask: an image already open with a mask (an earlier run's results,
        opened then) is not opened twice: its mask may hold edits, and a second pair of the same name could be
        accepted in its place. A layer that merely shares the name (another folder's image, a user's own) does not
        count."""
        from ._layers import MASK, is_source_image, layer_of

        return {x.name for x in self.viewer.layers if is_source_image(x) and layer_of(self.viewer, x, MASK) is not None}

    def _kept_store(self):
        from ._kept_edits import painted_mask_keeper

        return painted_mask_keeper(self.viewer).store

    def _on_done(self, summary, source: Optional[Path] = None, label: Optional[str] = None,
                 corrected: Sequence[str] = (), read: Optional[ResultsRead] = None) -> None:
        self.last_summary = summary
        stopped = " (cancelled: finished images kept, none half-written)" if summary.stopped else ""
        first, *rest = summary.describe().splitlines()
        # the model line above names the next run's, perhaps chosen while this one ran (trial of session 31: "runs:
        # bundled skin model" beside a polyp run's counts); not when it segmented nothing (its notes say whose masks)
        if summary.model and summary.count("done"):
            first += f" (model: {label or summary.model})"
        failed = f" Failed: {summary.failures()} (every reason in summary.csv)." if summary.count("error") else ""
        notes = [line.strip() for line in rest if line.strip().startswith("note:")]
        if corrected:  # the files hold the model's masks, the corrections are elsewhere: said, not found out later
            notes.append(f"{len(corrected)} of the masks written are of images with a correction stored already (the "
                         "files hold the model's masks; Correct & retrain lists the corrections): "
                         f"{named_few([Path(name).stem for name in corrected])}.")
        self.say(" ".join([first + stopped + failed] + notes))
        said_corrected = {Path(name).stem for name in corrected}
        if read is not None and self.viewer is not None:  # opened pair by pair as the worker read them
            opening, self._opening = self._opening or self._start_opening(), None
            opening.said_corrected = said_corrected
            self._finish_opening(opening, read)
        elif self.open_results.value and self.viewer is not None:  # (ticked while the run went on)
            self.open_masks(summary, source, said_corrected=said_corrected)

    def open_masks(self, summary, source: Optional[Path] = None, said_corrected: Collection[str] = (),
                   read: Optional[ResultsRead] = None) -> list:
        """Open the run's new masks, each over its image (as Labels tied to it, the mask colours, ready for
        *Correct & retrain*); only the first pair is visible, the rest are toggled in the layer list. At most
        OPEN_AT_MOST pairs (a folder of hundreds would fill the viewer). ``said_corrected``: the images whose stored
        correction the run's line named already (not said again). ``read``: the pairs read already
        (:func:`read_results`); without it they are read here. (A run with "open the results" ticked opens them pair by
        pair as its worker reads them; this opens them at once.)"""
        source = Path(source or self.input.value)
        opening = self._start_opening(said_corrected)
        if read is None:
            read = read_results(summary, source, opening.open_now, opening.keeper.store)
        for pair in read.pairs:
            self._add_pair(opening, pair)
        self._finish_opening(opening, read)
        return opening.added

    def _start_opening(self, said_corrected: Collection[str] = ()) -> Opening:
        from ._kept_edits import painted_mask_keeper

        return Opening(painted_mask_keeper(self.viewer), self._open_with_mask(), said_corrected)

    def _add_pair(self, opening: Opening, pair: ResultPair) -> None:
        """Add one result's image and mask (the first pair visible, the others hidden until viewed)."""
        from ._layers import HIDDEN_FOR_VIEW, SOURCE_FILE, start_mask
        from ._state import stored_corrections_of

        row, image, mask, key, kept = pair.row, pair.image, pair.mask, pair.key, pair.kept
        stem, index = Path(row["file"]).stem, len(opening.added) // 2
        if stem in opening.open_now or stem in self._open_with_mask():  # (opened with a mask meanwhile: not twice)
            opening.skipped += 1
            return
        selected = self.viewer.layers.selection.active  # (napari selects each layer added: the first pair's mask, or
        # what the user chose while the others were added, stays selected, and the others hidden)
        # (its file, as a layer napari opened from a file has it: a correction of it names the file and its folder, not
        # the layer's name alone: verification of session 42)
        layer = self.viewer.add_image(image, name=stem, rgb=pair.rgb, visible=index == 0,
                                      metadata={SOURCE_FILE: str(pair.path)} if pair.path is not None else None)
        opening.earlier_runs += row["status"] == "skipped-done"  # (those opened: a count of those tried said 6 for 2)
        # (a correction stored already is said, as Segment says it; edits older than it are not given back)
        stored = stored_corrections_of(self.models.corrections_dir, key)
        if stored:
            opening.corrected.append(stem)
            if kept is not None and not kept.newer_than(stored[-1].created):
                kept = None
                opening.older.append(stem)
        made = pair.made_by if pair.made_by is not None else row  # (a kept mask: the row of the run that made it)
        started, version = mask, made.get("model_version", "")
        if kept is not None:
            opening.restored.append(stem)
            started, version = kept.painted_from(started, version)
        # (the run's settings go with its mask into a correction of it; edits kept: those of the mask they were painted on)
        settings = made.get("settings", "") if kept is None else kept.painted_with(made.get("settings", ""))
        mask_layer = start_mask(self.viewer, layer, mask if kept is None else kept.mask, started, version,
                                settings=settings)
        opening.added += [layer, mask_layer]
        opening.keeper.tie(mask_layer, key, stem, restored=kept is not None, image_file=row["file"])
        mask_layer.visible = index == 0
        if index:  # hidden for the first pair: shown again when viewed, or when the image on screen closes
            layer.metadata[HIDDEN_FOR_VIEW] = mask_layer.metadata[HIDDEN_FOR_VIEW] = True
            if selected is not None and selected in self.viewer.layers:
                self.viewer.layers.selection.active = selected
        else:  # the first pair on screen at once, the others added hidden behind it
            self._show_first_pair(opening)

    def _show_first_pair(self, opening: Opening) -> None:
        from ._layers import bring_into_view, ready_to_paint

        added = opening.added
        bring_into_view(self.viewer, added[0], added[1])  # images open before that stick out around it are hidden
        self.viewer.reset_view()  # full-size frames opened at the zoom of smaller ones: a corner showed (session 31)
        ready_to_paint(self.viewer, added[1])  # the visible pair's mask, not the last (hidden) one

    def _finish_opening(self, opening: Opening, read: ResultsRead) -> None:
        """What the opening did, said after the run's line."""
        added, notes = opening.added, []
        opened, earlier_runs = len(added) // 2, opening.earlier_runs
        if read.stopped:
            notes.append(f"Cancelled while opening the results: opened {opened} of them.")
        elif read.total > OPEN_AT_MOST and earlier_runs:  # ("20 of 39" and "6 an earlier run wrote" read as 39 new
            # when this run made 23: trial of session 39)
            notes.append(f"Opened {opened} of {read.total} masks: {opened - earlier_runs} this run made and "
                         f"{earlier_runs} of the {read.total - read.new} an earlier run wrote.")
        elif read.total > OPEN_AT_MOST:  # ("the first 20" read as the first files; they are this run's: verification
            # of session 39)
            notes.append(f"Opened {opened} of {read.total} masks" + (": all this run made." if read.new else "."))
        if earlier_runs and read.total <= OPEN_AT_MOST:
            notes.append(f"Opened {earlier_runs} mask(s) an earlier run wrote.")
        if opening.restored:
            notes.append(f"{len(opening.restored)} mask(s) opened with the edits painted on them before (kept, not "
                         f"accepted; the files keep the model's masks): {named_few(opening.restored)}.")
        corrected = [stem for stem in opening.corrected if stem not in opening.said_corrected]
        if corrected:
            notes.append(f"{len(corrected)} of them have a correction stored already (the masks shown are the model's; "
                         f"Correct & retrain lists the corrections): {named_few(corrected)}.")
        if opening.older:
            notes.append(f"Edits painted earlier on {named_few(opening.older)} are older than the stored correction and "
                         "not shown (`unetv2 kept-edits export` saves them).")
        already = read.already + opening.skipped
        if already:
            notes.append(f"{already} image(s) already open with a mask were not opened again.")
        if read.unreadable:
            notes.append(f"Not opened ({len(read.unreadable)}): {named_few(read.unreadable)}.")
        if notes:
            said = self.status.value.replace("\u200b", "").rstrip()  # (a line-breaking hint; said again by say)
            self.say(" ".join([said if said.endswith(".") else f"{said}.", *notes]))
