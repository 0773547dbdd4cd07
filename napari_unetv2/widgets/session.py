"""Annotate a folder: one image at a time, segmented by the model in use (the next one computed in the
background so that *Next* is instant), *Accept & next* stores exactly the image and mask on screen,
*Skip*, keyboard shortcuts, an automatic retrain every N accepted corrections, resume after a restart,
and the finished masks exported as PNGs.

The session's state lives in :class:`napari_unetv2.annotation.AnnotationSession` (Qt-free); this widget
shows it and runs the model in workers.
"""
from __future__ import annotations

import contextlib
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton, SpinBox
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QApplication

from ..annotation import (
    AnnotationSession,
    DuplicateCorrection,
    WouldDiscardCorrection,
    WouldReplaceCorrection,
    store_correction,
)
from ..annotation.accept import ACCEPTED_EARLIER, GIVEN_MASK, entry_ids_named, stored_correction_of
from ..annotation.kept_edits import KeptEdit
from ..annotation.session import ACCEPTED, MANIFEST, SKIPPED, default_session_folder
from ..corrections import CorrectionSet
from ..corrections.auto_retrain import AutoRetrainPolicy, seen_by, trained_on_by_version
from ..corrections.correction_set import current_annotator, image_hash, not_a_correction_set, stored_when_by
from ..files import read_image
from ..files.paths import folder_text
from ..inference import PredictionCancelled
from ..inference.domain import describe_advice, domain_advice
from ..inference.settings import settings_of_prediction
from ..interactive import CLICKS_METADATA
from ..remembered import correction_set_chosen_last, offer, remember, remembered
from ..storage import data_home, default_corrections_dir
from ._after_pause import AfterPause
from ._base import SecondPress, WorkerWidget, named_few, one_line, wrapping_label
from ._kept_edits import painted_mask_keeper
from ._layers import (
    ACCEPTED_MASKS,
    ADVISED_MODEL,
    ATTENTION,
    BOX,
    CLICKS,
    COMPARISON,
    IMAGE_ID,
    MASK,
    MASK_DISPLAYS,
    MODEL_SETTINGS,
    MODEL_VERSION,
    PREDICTED_AT,
    PREDICTED_MASK,
    PREDICTION_SETTINGS,
    PROBABILITY,
    PROPOSAL,
    REMOVED_BY_PLUGIN,
    SESSION_IMAGE,
    bring_into_view,
    deleted_masks,
    hide_every_image,
    in_view,
    layer_of,
    layers_of,
    let_go_of_converted,
    mask_was_edited,
    note_accepted,
    ready_to_paint,
    remove_layer,
    role_of,
    same_layer,
    set_mask_display,
    show_prediction,
    show_probability,
    start_mask,
    start_proposal,
    unproxied,
)
from ._other_domain import OtherDomainQuestion
from ._rounds import (
    adopt,
    changed_note,
    describe_scores,
    fmt_eta,
    models_of,
    round_job,
    split_by_line,
    trained_on,
    with_reference,
)
from ._state import corrections_by_image, version_scores_cached
from ._workers import make_worker


class _Stored(QObject):
    """Carries a finished write (path, (stored, note) or an error) from the writer thread to the GUI thread."""

    done = Signal(object)


SESSION_FILE_KEY = SESSION_IMAGE  # metadata of the image layer the session shows
KEYS = {"next": "Alt-Right", "previous": "Alt-Left", "accept": "Alt-Enter", "skip": "Alt-S"}
_CACHE_SIZE = 3  # current, next, and the one just left (going back is instant too)
# The next image is computed once the image just shown has been drawn: started at once, its worker took
# the core and the GIL from napari's first paint of the new image (llvmpipe draws with the CPU).
_PREFETCH_DELAY_MS = 150


ACCEPT_AFTER_S = 0.35  # an image must have been on screen this long before it can be accepted
FOLLOW_OTHER_WINDOWS_MS = 3000  # how often session.json is looked at for another window's decisions (one stat)
SWITCH_MODEL = "put {model} in use (Correct & retrain: versions, Use this version)"  # (how the domain hint says it)
LEAVE_AGAIN_WITHIN_S = 60  # a second Next/Previous/Skip within this leaves an edited, unaccepted mask behind
DRAFT_AFTER_MS = 500  # painting paused this long: the edits are kept on disk as the image's draft
DRAFT_AT_LEAST_EVERY_S = 5.0  # ... and at least this often while painting goes on without a pause


def earlier_correction(corrections_dir: Path, image: np.ndarray, path: Path, pixels: Optional[str] = None):
    """The correction set's (entry, mask) of this image, or None; read in the worker that segments it (reading the
    set cost the GUI thread 0.2-0.8 s on a 300-entry set). A set that cannot be read hides nothing: the model's mask
    is shown, and an unedited Accept over a correction is still refused in the writer thread."""
    if not_a_correction_set(corrections_dir):
        return None
    try:
        return stored_correction_of(corrections_dir, image, path.name, pixels)
    except (OSError, ValueError):
        return None


# an accepted image whose correction was removed from the set in Correct & retrain (clinician trial of session 39)
# (not "in the set's history": it may be purged since; nor "in Correct & retrain": the CLI removes too; trial of
# session 42)
CORRECTION_REMOVED_LINE = ("the mask accepted here; its correction was taken out of the correction set (`unetv2 "
                           "corrections history` says when, by whom and why): no round trains on it; Accept again to "
                           "store it, if it was taken out by mistake")


class SessionWidget(WorkerWidget):
    def __init__(self, napari_viewer, store_dir=None):
        super().__init__(napari_viewer, store_dir)
        self.images = FileEdit(label="image folder", mode="d", tooltip="The folder of images to go through.")
        self.masks = FileEdit(label="existing masks (optional)", mode="d", value="",
                              tooltip="A folder of masks named like the images (<stem>.png, <stem>_mask.png ...): "
                                      "they are shown for correction instead of the model's prediction.")
        self.session_folder = FileEdit(label="session folder", mode="d", value="",
                                       tooltip="Where the session's progress and finished masks are kept; reopen it "
                                               "to resume. Empty: a folder named after the image folder in the "
                                               "plugin's data folder (a short code added if another folder of that "
                                               "name has one there).")
        self.corrections = FileEdit(label="correction set", mode="d", value=str(default_corrections_dir()),
                                    tooltip="Where accepted corrections go (the same set Correct & retrain uses).")
        self.open_button = PushButton(text="Open / resume", tooltip="Start the session, or resume it where it stopped.")
        self.where = wrapping_label("reviewed", "no session open", tooltip="How far the session is, and the image shown.")
        self.previous_button = PushButton(text="Previous", tooltip=f"Go to the previous image ({KEYS['previous']}).")
        self.next_button = PushButton(text="Next", tooltip=f"Go to the next image without deciding ({KEYS['next']}).")
        self.skip_button = PushButton(text="Skip", tooltip=f"Mark this image as skipped and go on ({KEYS['skip']}).")
        self.accept_button = PushButton(text="Accept && next",
                                        tooltip="Store this image with the mask on screen as a correction and as a "
                                                f"finished mask, then go on ({KEYS['accept']}).")
        nav = Container(layout="horizontal", widgets=[self.previous_button, self.next_button, self.skip_button],
                        labels=False)
        self.display = ComboBox(label="mask display", choices=list(MASK_DISPLAYS), value="filled",
                                tooltip="filled: translucent mask; outline: only its border, the tissue stays visible.")
        self.auto_retrain = CheckBox(text="retrain every N accepted corrections", value=False,
                                     tooltip="Fine-tune the model in use in the background once N corrections of its "
                                             "line are in the correction set that it has not seen, trained on or held "
                                             "out (this session's and earlier ones'); annotating goes on meanwhile.")
        self.retrain_every = SpinBox(label="N", min=1, max=1000, value=5,
                                     tooltip="How many corrections the model in use has not seen start a round.")
        self.epochs = SpinBox(label="epochs per round", min=1, max=500, value=20,
                              tooltip="Passes over the corrections in each automatic round.")
        self.export_folder = FileEdit(label="export to", mode="d", value="",
                                      tooltip="A new or empty folder for the finished masks (<stem>.png, as unetv2 predict).")
        self.export_button = PushButton(text="Export finished masks",
                                        tooltip="Copy every accepted mask to the export folder (nothing is overwritten).")
        self._start_buttons = []  # the session's own buttons stay usable while a retrain runs
        self.extend([self.images, self.masks, self.session_folder, self.corrections, self.open_button, self.where,
                     nav, self.accept_button, self.display, self.auto_retrain, self.retrain_every, self.epochs,
                     self.export_folder, self.export_button])
        self.add_common()
        # The status beside the buttons it answers: docked above Correct & retrain, each line scrolled the dock to the
        # status at its foot, and the progress line with Previous/Next/Accept out of view (trial of session 32).
        for widget in (self.status, self.restore_button):
            self.remove(widget)
        after = self.index(self.accept_button) + 1
        self.insert(after, self.status)
        self.insert(after + 1, self.restore_button)
        self.open_button.changed.connect(self.open_session)
        self.previous_button.changed.connect(self.previous_image)
        self.next_button.changed.connect(self.next_image)
        self.skip_button.changed.connect(self.skip)
        self.accept_button.changed.connect(self.accept_and_next)
        self.export_button.changed.connect(self.export)
        self.display.changed.connect(self._on_display)
        self.models.changed.connect(self._on_model_switched)
        self.models.correction_stored.connect(self.guarded(self._on_stored_elsewhere))

        self.session: Optional[AnnotationSession] = None
        self.image_layer = None
        self.mask_layer = None
        self.shown_path: Optional[Path] = None
        self._shown_at = float("-inf")  # time.monotonic() when shown_path appeared (or its mask was replaced in place)
        self._replaced = False  # whether _shown_at is a replacement's
        self._default_root = ""  # the session folder this widget filled in itself,
        self._default_for: Optional[Path] = None  # for this image folder
        # the folders used last (a session resumes with one press); the session folder offered counts as filled in by
        # us for its image folder: another image folder chosen gets its own (not "belongs to the images in ...")
        offer(self.images, "session.images")
        chosen_last = correction_set_chosen_last()
        if chosen_last is not None:
            self.corrections.value = chosen_last
        if remembered("session.folder") is not None and str(self.images.value) not in ("", "."):
            offer(self.session_folder, "session.folder")
            self._default_root, self._default_for = str(self.session_folder.value), Path(str(self.images.value))
        self.images.changed.connect(self._on_images_chosen)
        self._accepted_here: tuple = (None, None)  # (image, hash of its mask) accepted and still on screen
        self.failed_path: Optional[Path] = None  # the current image, which could not be read or segmented
        self._failure_line = ""  # what was said of it
        self._leave_asked = SecondPress(LEAVE_AGAIN_WITHIN_S)  # warned of leaving (image, action)'s edits
        self._other_domain = OtherDomainQuestion()  # asked before a correction trains a line the image is not for
        self.models.scores_changed.connect(self.guarded(self._on_set_changed))
        self._cache: dict[tuple[str, str], tuple[np.ndarray, object]] = {}  # (file, model) -> (pixels, prediction)
        self._loading: dict[tuple[str, str], object] = {}  # (file, model) -> worker
        self._refresh: set[tuple[str, str]] = set()  # computations that update the shown image in place
        self.accepted_since_retrain = 0
        self.retrain_rounds = 0  # finished automatic rounds
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unetv2-session-writer")
        # another window (or workstation) on this session folder: its decisions counted here too (one stat a beat)
        self._other_windows = QTimer(self.native)
        self._other_windows.setInterval(FOLLOW_OTHER_WINDOWS_MS)
        self._other_windows.timeout.connect(self.guarded(self._follow_other_windows))
        self._other_windows.start()
        self._writing: list[str] = []  # names of images whose acceptance is being written
        # their accepted masks meanwhile: going back to one at once shows it (the session does not know it yet)
        self._pending_masks: dict[str, np.ndarray] = {}
        self._replace_confirmed = None  # (image, mask hash) whose replacing of an earlier correction was said once
        self._shown_correction = None  # the set's entry whose mask is shown (the image had been corrected elsewhere)
        self._adoption_note = None  # (version, reason) of a round's adoption, said again with its re-segmentation
        self._opening_note = None  # the resumed settings, said again with the first image shown
        self._image_line: tuple = (None, "")  # (path, what the status said of the image when it was shown)
        # the shown mask's edits, not accepted yet, kept on disk (AnnotationSession.keep_draft) once painting pauses
        self._draft_timer = AfterPause(self.guarded(self._keep_draft), DRAFT_AFTER_MS, DRAFT_AT_LEAST_EVERY_S)
        # a stroke less than DRAFT_AFTER_MS before the window closed was lost (verification of session 32): the dock
        # going (the window closed) or the application quitting writes a pending draft at once
        self.native.destroyed.connect(lambda *_: self._flush_draft())
        self.native.destroyed.connect(lambda *_: self.session is not None and self.session.close_mark())  # (never raises)
        QApplication.instance().aboutToQuit.connect(self._flush_draft)
        self._draft_watched = weakref.WeakSet()  # mask layers whose edits start that timer
        self._shown_draft = False  # whether the mask shown started from a kept draft
        # the image key of edits painted outside a session (kept_edits) that the mask shown started from, or that the
        # draft shown grew from: leaving the shown edits leaves those too
        self._kept_to_leave: Optional[str] = None
        self._domain_said = ""  # the last hint that another bundled model fits the images (inference/domain.py)
        self._round_note = ""  # what the running round trains on (_rounds.trained_on), said with its result
        self._stored = _Stored()
        self._stored.done.connect(self.guarded(self._on_stored))
        self._applying = False  # settings being applied from session.json: not written back one by one
        for control, _kind in self._setting_controls().values():
            control.changed.connect(self._remember_settings)
        self._bind_keys()
        napari_viewer.layers.events.removed.connect(self.guarded(self._on_layer_gone))
        # what is cached per image includes the set's correction of it: another set, other corrections (review of
        # session 30: the old set's correction was shown as "your correction" and stored into the new set)
        self.corrections.changed.connect(lambda _=None: self._cache.clear())
        # one correction set per napari process: chosen here, Correct & retrain lists it (and the other way round while no
        # session is open here; an open session keeps the set its acceptances went into)
        self.corrections.changed.connect(self.guarded(self._share_the_chosen_set))
        self.corrections.line_edit.native.editingFinished.connect(
            self.guarded(lambda: self._share_the_chosen_set(typing=False)))
        self.models.correction_set_changed.connect(self.guarded(self._follow_the_chosen_set))

    def _share_the_chosen_set(self, _=None, typing: Optional[bool] = None) -> None:
        """A correction set chosen here is the one Correct & retrain lists, once it is one and the typing ended: a
        folder typed letter by letter was made a set at each keystroke (cold review of session 41), and a set named by
        the start of the path typed was taken by the other dock; a new one is shared at its first accept."""
        typing = self.corrections.line_edit.native.hasFocus() if typing is None else typing
        folder = Path(str(self.corrections.value))
        if not typing and str(self.corrections.value) not in ("", ".") and (folder / "provenance").is_dir():
            self.models.use_correction_set(folder)

    def _follow_the_chosen_set(self) -> None:
        chosen = self.models.corrections_dir
        if chosen is None or Path(chosen) == Path(str(self.corrections.value)):
            return
        if self.session is None:
            self.corrections.value = str(chosen)
        else:  # (its acceptances are in its own set: said, not moved)
            self.say(f"another dock chose the correction set {chosen}; this session stores into "
                     f"{self.corrections.value} (its correction set field): choose the same there to store into it")

    # ---- opening ---------------------------------------------------------------------------------------
    def open_session(self, _=None) -> Optional[AnnotationSession]:
        images = str(self.images.value)
        root = str(self.session_folder.value)
        if root in ("", ".") or (root == self._default_root and images not in ("", ".")
                                 and Path(images) != self._default_for):
            # Empty, or filled in by us for another image folder (opened or refused): this folder gets its own
            # default (the other one's was refused as belonging to those images, and the user had to clear it).
            if images in ("", "."):
                self.say("choose an image folder (or a session folder to resume)")
                return None
            self._default_for = Path(images)
            root = self._default_root = str(default_session_folder(data_home() / "sessions", Path(images)))
            self.session_folder.value = root
        masks = str(self.masks.value)
        try:
            opened = AnnotationSession(Path(root), None if images in ("", ".") else Path(images),
                                       None if masks in ("", ".") else Path(masks))
        except (ValueError, OSError) as err:  # (the session open before stays open, and marked: cold review of 40)
            self.report_error(err, "session not opened")
            return None
        if self.session is not None:
            self.session.close_mark()  # this window leaves that session (its mark goes; reopened below if the same)
        self.session = opened
        self.images.value = str(self.session.images_dir)
        own_set = self._sessions_own_set()
        if own_set is not None:  # (the field offered another widget's set, the one used last: cold review of session 39)
            self.corrections.value = own_set
        remember(session__images=self.session.images_dir, session__folder=root, corrections=str(self.corrections.value))
        self._share_the_chosen_set()  # (Correct & retrain lists the set this session stores into)
        self._apply_settings(self.session.settings)
        if own_set is not None:
            self._opening_note = "; ".join(filter(None, (
                self._opening_note, f"this session's corrections are in {own_set}: the correction set is that one again")))
        try:
            others = self.session.mark_open()
        except OSError:  # (a folder that refuses the mark: nothing is known of other windows)
            others = 0
        if others:
            self._opening_note = "; ".join(filter(None, (self._opening_note, (
                "this session is open in another napari window too: each counts the other's decisions, and keeps "
                "its own unaccepted edits of an image the other has edits of; the first to accept an image stores "
                "it, and the other is asked before it replaces that correction"))))
        self._cache.clear()
        followed = self._follow_corrections()
        self.show_current()
        if followed:
            self.say(f"{followed} {self._image_line[1]}")
        return self.session

    def _follow_other_windows(self) -> None:
        """Another window's acceptances and skips, written to session.json since: "2 / 8 reviewed" counts them (it
        stayed behind until the user moved: trial of session 40)."""
        if self.session is not None and self.session.follow_other_windows():
            self._update_where()

    def _on_images_chosen(self, _=None) -> None:
        """Another image folder: a session folder this widget filled in (the last one's) is that folder's own again,
        not the last one's, which stayed in the field until Open (verification of session 39)."""
        images = str(self.images.value)
        if self._default_root and str(self.session_folder.value) == self._default_root and images not in ("", ".") \
                and Path(images) != self._default_for:
            self._default_for = Path(images)
            self._default_root = str(default_session_folder(data_home() / "sessions", Path(images)))
            self.session_folder.value = self._default_root

    def _sessions_own_set(self) -> Optional[str]:
        """The one correction set this session's acceptances went into, when the field names another (None else)."""
        recorded = {item.get("set") for item in self.session.items.values()
                    if item.get("status") == ACCEPTED and isinstance(item.get("set"), str) and item.get("set")}
        if len(recorded) != 1:
            return None
        (own,) = recorded
        try:
            same = Path(own) == Path(str(self.corrections.value)).resolve()
        except OSError:
            return None
        return None if same or not Path(own).is_dir() else own

    def _follow_corrections(self, only: Optional[Path] = None) -> str:
        """The accepted images whose correction was replaced elsewhere take it (:meth:`AnnotationSession.follow_corrections`);
        what to say of it ("" when none)."""
        try:
            updated = self.session.follow_corrections(Path(str(self.corrections.value)), only)
        except OSError as err:
            return f"the correction set could not be compared with this session's masks ({one_line(err)})."
        said = []
        if updated:
            names = ", ".join(path.name for path, _ in updated[:3]) + (f" and {len(updated) - 3} more" if len(updated) > 3 else "")
            said.append(f"{len(updated)} accepted image(s) ({names}) take the correction that replaced theirs in the "
                        "correction set (another session or window).")
        removed = sorted(self.session.corrections_removed)
        if removed and only is None:  # (an image shown alone says it in its own line)
            said.append(f"{len(removed)} accepted image(s) no longer have a correction in the correction set (taken "
                        f"out: {named_few([Path(name).stem for name in removed])}; `unetv2 corrections history` says when, "
                        "by whom and why): their masks stay accepted here and are exported, but no round trains on them; "
                        "Accept again to store them, if they were taken out by mistake.")
        return " ".join(said)

    # ---- the session's own settings (kept in session.json: a resumed session retrains as before) -------------
    def _setting_controls(self) -> dict:
        return {"auto_retrain": (self.auto_retrain, bool), "retrain_every": (self.retrain_every, int),
                "epochs": (self.epochs, int)}

    def _apply_settings(self, settings: dict) -> None:
        self._applying = True
        changed = False
        try:
            for name, (control, kind) in self._setting_controls().items():
                value = settings.get(name)
                if type(value) is kind and (kind is bool or control.min <= value <= control.max) and control.value != value:
                    control.value, changed = value, True
        finally:
            self._applying = False
        self._remember_settings()
        if changed:  # said, so a setting made just before opening is not undone unseen
            state = "on" if self.auto_retrain.value else "off"
            # said with the first image's line: said alone, "segmenting ..." replaced it at once (trial of session 30)
            self._opening_note = (f"resumed with this session's settings: automatic retraining {state}, N "
                                  f"{self.retrain_every.value}, {self.epochs.value} epochs per round")
            self.say(self._opening_note)

    def _remember_settings(self, _=None) -> None:
        if self.session is None or self._applying:
            return
        settings = {name: kind(control.value) for name, (control, kind) in self._setting_controls().items()}
        if settings != self.session.settings:
            self.session.settings = settings
            self._writer.submit(self.session.save)

    # ---- showing an image ------------------------------------------------------------------------------
    def _model_key(self) -> str:
        return str(self.models.checkpoint())

    def show_current(self) -> None:
        """Show the session's current image: at once when its prediction is ready, else when computed."""
        path = self.session.current
        self.failed_path = None  # tried again: a file may have been repaired (or the session reopened)
        self._update_where()
        try:
            # an acceptance still being written is the mask to show: the model's, shown instead, and accepted again,
            # replaced the correction just made (Previous within a quarter of a second of Accept)
            pending = self._pending_masks.get(path.name)
            if pending is None and self._accepted(path):
                # (one file check; replaced from another window: the set's mask, said with the image: it was shown as
                # "your accepted mask" unsaid, another annotator's: verification of session 40)
                followed = self._follow_corrections(path)
                if followed:
                    self._opening_note = "; ".join(filter(None, (self._opening_note, followed.rstrip("."))))
            starting = pending.copy() if pending is not None else self.session.starting_mask(path)
            image = read_image(path) if starting is not None else None
        except (ValueError, OSError) as err:  # the image (or its given mask) cannot be read
            self._show_failure(path, err)
            return
        if starting is not None:  # an accepted or given mask: shown for correction, no prediction needed
            self._display(path, image, None, starting=starting)
        else:
            key = (str(path), self._model_key())
            if key in self._cache and (not os.path.isfile(path) or getattr(self._cache[key][1], "correction_ids", None)
                                       != self._correction_ids(path)):
                # read ahead before another window or annotator stored (or removed) a correction of it: read again, or
                # the model's mask was shown over their correction, and one press replaced it; or before the file was
                # renamed or deleted: said, not shown from memory as if still in the folder (trial of session 40)
                del self._cache[key]
            if key in self._cache:
                self._display(path, *self._cache[key])
            else:
                self.say(f"segmenting {path.name}...")
                self._compute(path)
        QTimer.singleShot(_PREFETCH_DELAY_MS, self.guarded(self._prefetch))

    def _correction_ids(self, path: Path) -> frozenset:
        """The correction set's entries made from ``path`` (its file names only: a listing, cheap in this thread)."""
        return entry_ids_named(Path(str(self.corrections.value)), path.name)

    def _compute(self, path: Path, refresh: bool = False) -> None:
        """Read and segment ``path`` in a worker and cache it. When it is done and ``path`` is the current
        image, it is shown (or, with ``refresh``, the shown image's layers are updated in place)."""
        key = (str(path), self._model_key())
        if refresh:
            self._refresh.add(key)
        if key in self._loading:
            return  # the running worker shows it when done (below), whoever asked first
        checkpoint, device, models = self.models.checkpoint(), self.device.value, self.models
        corrections_dir = Path(str(self.corrections.value))
        kept_edits = painted_mask_keeper(self.viewer).store  # (read in the worker: it holds only its folder)

        def job():
            # the error wrapped, not returned bare: superqt takes a returned RuntimeError (a CUDA out-of-memory)
            # for an aborted worker and emits nothing, and the image then stayed "being segmented" for good
            correction_ids = entry_ids_named(corrections_dir, path.name)  # (before the set is read: see show_current)
            try:
                image = read_image(path)
                predictor = models.predictor(checkpoint, device)
                # napari quitting asks the worker to quit and waits for it (a large image in tile mode went on to its
                # last tile); the dock closed: nothing to show it in
                prediction = predictor.predict(image, should_stop=lambda: self.closed or worker.abort_requested)
                version = getattr(getattr(predictor, "config", None), "version", None)  # (a hint: never in the way)
                advice = domain_advice(image, None, version, checkpoint)
                prediction.domain_note = describe_advice(advice, SWITCH_MODEL, version)
                prediction.advised_model = advice[1].name if advice is not None else None  # (asked at Accept)
            except PredictionCancelled:
                return "stopped", None
            except (ValueError, RuntimeError, OSError, MemoryError) as err:
                return "error", err
            prediction.correction_ids = correction_ids
            # edits painted on this image in Segment (or on a Batch result) and kept, never accepted: shown here
            prediction.image_key = image_hash(image)
            kept = {role: kept_edits.find(prediction.image_key, image.shape[:2], role) for role in (MASK, PROPOSAL)}
            earlier = earlier_correction(corrections_dir, image, path, prediction.image_key)
            return "ok", (image, prediction, earlier, kept)

        def returned(outcome) -> None:
            self._loading.pop(key, None)
            kind, result = outcome
            if kind == "stopped":
                return
            if kind == "error":
                if self.session is None or self.session.current != path or key[1] != self._model_key():
                    return  # a read-ahead's failure is met when the user gets there (computed again then)
                if self.shown_path == path:  # a re-segmentation of the image on screen: its layers (and edits) stay
                    self.report_error(result, f"{path.name} could not be segmented again")
                else:
                    self._show_failure(path, result)
                return
            self._cache[key] = result
            while len(self._cache) > _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            if self.session is None or self.session.current != path:
                return
            try:
                if self.shown_path != path or self._closed_by_user(path):  # (closed: shown again, _show_again)
                    self._display(path, *result)
                elif key in self._refresh:
                    self._refresh.discard(key)
                    self._update_in_place(path, result[1])
            except RuntimeError:  # the widget was closed while the model ran: nothing to show it in
                return

        worker = make_worker(job, _ignore_errors=True)
        worker.returned.connect(self.guarded(returned))
        worker.errored.connect(self.guarded(lambda err: returned(("error", err))))
        # a worker asked to quit (napari's Quit) ends without "returned": no longer loading, or its image was never
        # computed again (show_current waits for a worker in _loading)
        worker.finished.connect(self.guarded(lambda: self._loading.pop(key) if self._loading.get(key) is worker else None))
        self._loading[key] = worker
        worker.start()

    def _show_failure(self, path: Path, err: BaseException) -> None:
        """The current image cannot be shown: the previous image goes from the canvas (left there, it was taken
        for this one, with its mask selected and the brush ready), and the status says what to do."""
        self._remove_shown()
        hidden = hide_every_image(self.viewer)  # (another widget's image left below was taken for this one too)
        self.failed_path, self._opening_note = path, None  # (that note belongs with an image's line)
        self._update_where()
        others = "; the other images are hidden meanwhile" if hidden else ""
        if self.session is not None and self.session.reviewed(frozenset(self._writing)) == len(self.session):
            # a finished session reopened on its last image, skipped as unreadable (trial of session 35)
            advice = f"; all {len(self.session)} images are reviewed: export the finished masks when done"
        else:
            advice = " (Skip it, or go on with Next)"
        self._failure_line = f"{path.name} could not be read or segmented{advice}{others}"
        self.report_error(err, self._failure_line)

    def _update_in_place(self, path: Path, prediction) -> None:
        """The shown image segmented again by a new model: its mask updated in place unless edited (or a correction
        from the set: only the probability is the new model's then)."""
        # only the re-segmentation by the version just adopted (a later Roll back or switch would carry it stale)
        adopted, self._adoption_note = self._adoption_note, None
        adopted = adopted[1] + ". " if adopted and adopted[0] == prediction.model_version else ""
        if self._live_mask() is None:  # its mask layer deleted: a painted one waits for Restore, else it is shown again
            show_probability(self.viewer, self.image_layer, prediction, prediction.model_version)
            if deleted_masks(self.viewer).holds_one_of(self.image_layer):  # (a hidden new mask was accepted unseen)
                self.say(f"{adopted}{path.name} segmented again with {self.models.label()}; its painted mask was "
                         "deleted: Restore deleted mask (below) brings it back")
                return
            self.mask_layer = start_mask(self.viewer, self.image_layer, prediction.mask, prediction.mask,
                                         prediction.model_version, self.display.value,
                                         getattr(prediction, "advised_model", None), settings_of_prediction(prediction))
            self._shown_at, self._replaced = time.monotonic(), True
            self.say(f"{adopted}{path.name} segmented again with {self.models.label()}")
            return
        if self._shown_correction is not None:
            show_probability(self.viewer, self.image_layer, prediction, prediction.model_version)
            # said again: the adoption's status replaced the line saying whose mask this is (trial of session 30)
            self.say(f"{adopted}{path.name}: your correction {self._shown_correction.id} stays on screen; the "
                     f"probability is {self.models.label()}'s")
            return
        # (the time on the image goes on: a new model's mask recorded 0.5 s spent; trial of session 30)
        shown = show_prediction(self.viewer, self.image_layer, prediction, prediction.model_version,
                                display=self.display.value, visible=False, keep_started=True)
        # how much the new model changed the mask (the session's image said nothing: verification of session 43)
        changed = [(path.name, *shown["replaced"])] if shown["replaced"] is not None else []
        hidden = "" if shown["kept_edited"] and shown["proposal"].visible else " (hidden: tick its eye to compare)"
        # (the model's name: after a Roll back "the new model" was the older one)
        note = (f"; your edits were kept, {self.models.label()}'s mask is in '{shown['proposal'].name}'{hidden}"
                if shown["kept_edited"] else "")
        if not shown["kept_edited"]:
            # a mask changed under the user's eyes must be looked at before Accept takes it, as a new image must (trial
            # of session 30: an Accept 0.1 s after the new model's mask replaced the old one stored it as checked)
            self._shown_at, self._replaced = time.monotonic(), True
        self.say(f"{adopted}{path.name} segmented again with {self.models.label()}{note}{changed_note(changed)}")

    def _prefetch(self) -> None:
        if self.session is None:
            return
        upcoming = self.session.path_at(self.session.position + 1)
        try:
            given = self.session.starting_mask(upcoming) if upcoming is not None else None
        except (ValueError, OSError):  # a damaged mask: said by show_current when the user gets there
            return
        if upcoming is not None and given is None:
            if (str(upcoming), self._model_key()) not in self._cache:
                self._compute(upcoming)

    def _display(self, path: Path, image: np.ndarray, prediction, earlier=None, kept: Optional[dict] = None,
                 starting: Optional[np.ndarray] = None) -> None:
        """Show this image and its mask in place of the previous ones: one image's layers at a time.

        ``earlier``: the correction set's (entry, mask) of this image, shown instead of the model's mask (with the
        model's probability beside it): a correction made in *Correct & retrain* or an earlier session is the
        clinician's work, and showing the model's mask over it had them correct the image again (stop 29's list).
        ``kept``: {role: edits painted on this image's mask or proposal outside a session (a *Segment* result touched
        up) and kept, never accepted} as read ahead: shown unless a correction stored later holds the image (the session
        ignored them, and Accept then dropped them: stop 33's list); see :meth:`_outside_edits`.

        The layers are reused (their pixels replaced), not removed and added: napari runs a full garbage
        collection for every removed layer, which stalls the viewer for a second with torch loaded."""
        rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
        layer = self.image_layer
        reshown = self._closed_by_user(path)
        if layer is not None and layer in self.viewer.layers and layer.rgb == rgb and layer.data.ndim == image.ndim:
            for extra in (PROPOSAL, ATTENTION, CLICKS, BOX, COMPARISON) + ((PROBABILITY,) if prediction is None else ()):
                for old in layers_of(self.viewer, layer, extra):
                    remove_layer(self.viewer, old)  # rare: a proposal after a model switch, or a revisit (painted
                    # on: left by the user's second Next, see _may_leave; not offered by Restore deleted mask)
            let_go_of_converted(self.viewer, layer)
            layer.data = image
            layer.name = path.stem
            layer.reset_contrast_limits()
        else:
            self._remove_shown(keep_painted=reshown)
            # (an image shown again after the user closed it takes back the mask painted on it: reattach_reopened_image)
            layer = self.image_layer = self.viewer.add_image(image, name=path.stem, rgb=rgb)
        layer.metadata[SESSION_FILE_KEY] = str(path)
        # how the image before was segmented is no settings of this one (a new model re-segmented the session's next
        # image at the threshold Segment had used on the one before: verification of session 38)
        layer.metadata.pop(PREDICTION_SETTINGS, None)
        self._shown_correction = None
        painted = layer_of(self.viewer, layer, MASK) if reshown else None
        painted = painted if painted is not None and mask_was_edited(painted) else None
        # edits painted on it before napari closed (or crashed), never accepted: shown over whatever it starts from
        draft = None if painted is not None else self.session.draft(path, image.shape[:2])
        kept, kept_proposal, draft, draft_set_aside = self._outside_edits(path, prediction, earlier, kept or {}, draft,
                                                                          painted is not None, image.shape[:2])
        self._shown_draft = draft is not None
        if painted is not None:
            self.mask_layer = painted  # as the user left it when the image was closed
            if prediction is not None:
                show_probability(self.viewer, layer, prediction, prediction.model_version)
        elif starting is not None:
            version = ACCEPTED_EARLIER if self._accepted(path) else GIVEN_MASK
            self.mask_layer = start_mask(self.viewer, layer, starting if draft is None else draft, starting, version,
                                         self.display.value)
        else:
            advised = getattr(prediction, "advised_model", None)
            if kept is not None:  # the model's mask they were painted from is what they are measured against
                started, version = kept.painted_from(prediction.mask, prediction.model_version)
                self.mask_layer = start_mask(self.viewer, layer, kept.mask, started, version, self.display.value,
                                             advised if version == prediction.model_version else None,
                                             kept.painted_with(settings_of_prediction(prediction)))
            elif earlier is not None:  # accepted earlier, elsewhere: stored again unchanged, it is the same entry
                self._shown_correction = earlier[0]
                self.mask_layer = start_mask(self.viewer, layer, earlier[1] if draft is None else draft, earlier[1],
                                             ACCEPTED_EARLIER, self.display.value)
            else:
                self.mask_layer = start_mask(self.viewer, layer, prediction.mask if draft is None else draft,
                                             prediction.mask, prediction.model_version, self.display.value, advised,
                                             settings_of_prediction(prediction))
            show_probability(self.viewer, layer, prediction, prediction.model_version)
            if kept_proposal is not None:  # painted on in Segment: shown beside the mask, as Segment gives it back
                start_proposal(self.viewer, layer, kept_proposal.mask,
                               *kept_proposal.painted_from(prediction.mask, prediction.model_version),
                               kept_proposal.painted_with(settings_of_prediction(prediction)))
        self.shown_path, self.failed_path = path, None
        self._shown_at, self._replaced = time.monotonic(), False
        self._watch_edits(self.mask_layer)
        bring_into_view(self.viewer, layer, self.mask_layer)  # above other open images, none sticking out around it
        self.viewer.reset_view()
        ready_to_paint(self.viewer, self.mask_layer)
        self._update_where()
        opening, self._opening_note = self._opening_note, None
        opening = f"{opening}. " if opening else ""
        if deleted_masks(self.viewer).holds_one_of(layer):  # (the image closed and shown again, after its mask was deleted)
            opening += f"a painted mask of {path.name} was deleted: Restore deleted mask (below) brings it back. "
        for draft, painter in self.session.drafts_set_apart(path):  # (a closed window's, met with another's draft)
            opening += (f"another draft of {path.name}{f' (painted by {painter})' if painter else ''}, kept apart by a "
                        f"napari window since closed, is in {draft}: `unetv2 kept-edits export` writes it. ")
        painter = self.session.draft_painter(path) if self._shown_draft else None
        who = painter if painter and painter != current_annotator() else "you"  # (a colleague's draft: named)
        if self._shown_draft and self._shown_correction is not None:  # (a correction stored after the edits began)
            entry = self._shown_correction
            self._image_line = (path, f"{path.name}: the edits {who} painted on its mask (kept, not accepted yet) are "
                                      f"shown, not the correction {entry.id} {stored_when_by(entry)} "
                                      "meanwhile (another window or annotator?); Accept & next replaces that correction "
                                      "with them")
        elif self._shown_draft and self._accepted(path):  # over its accepted mask (another window's acceptance, or
            # a draft kept when that window's correction came first): accepting replaces that correction (cold review)
            self._image_line = (path, f"{path.name}: the edits {who} painted on its mask (kept, not accepted yet) are shown "
                                      "over its accepted mask; Accept & next replaces the accepted correction with them")
        elif self._shown_draft:
            self._image_line = (path, f"{path.name}: the edits {who} painted on its mask before napari closed are shown "
                                      "(kept, not accepted yet); Accept & next stores them")
        elif kept is not None:
            other = kept.about.get("model_version") or ""
            other = f", over version {other}'s mask" if other and other != prediction.model_version else ""
            aside = (" (a draft painted on it here before them is set aside: it goes when you accept or leave these)"
                     if draft_set_aside else "")
            self._image_line = (path, f"{path.name}: the edits you painted on it outside this session (kept "
                                      f"{kept.kept_at}{other}, never accepted) are shown{aside}; Accept & next stores "
                                      "them")
        elif self._shown_correction is not None:
            entry = self._shown_correction
            self._image_line = (path, f"{path.name}: the correction {entry.id} ({stored_when_by(entry)}) is shown, "
                                      "not the model's mask; Accept & next "
                                      "keeps it, or edit it and accept to replace it")
        else:
            nothing = starting is None and prediction is not None and not np.any(prediction.mask)
            removed = path.name in self.session.corrections_removed
            self._image_line = (path, f"{path.name}: " + (CORRECTION_REMOVED_LINE if self._accepted(path) and removed
                                                          else
                                                          f"{self._accepted_mask_words(path)}; edit and accept again to "
                                                          "replace it" if self._accepted(path) else
                                                          "the model marked nothing (an empty mask): paint what it "
                                                          "missed, then Accept & next (or accept it empty if there "
                                                          "is nothing to mark)" if nothing else
                                                          "correct the mask, then Accept & next"))
        if kept_proposal is not None:
            self._image_line = (path, f"{self._image_line[1]}; the proposal you painted on in Segment (kept "
                                      f"{kept_proposal.kept_at}) is beside it in '{layer.name} proposal' (it goes when "
                                      "the image is accepted)")
        if not self._shown_draft and self.session.draft_of_another_window(path):
            self._image_line = (path, f"{self._image_line[1]}; another napari window on this session has edits of this "
                                      "image not accepted yet (left to it: not shown here)")
        # said once for a run of such images (with each, it would crowd out the image's own line)
        hint = getattr(prediction, "domain_note", "") if prediction is not None else ""
        if hint and hint != self._domain_said:
            opening = f"{opening}{hint} "
        self._domain_said = hint or self._domain_said
        self.say(f"{opening}{self._image_line[1]}")

    def _outside_edits(self, path: Path, prediction, earlier, kept: dict, draft, reshown_painted: bool, shape: tuple):
        """(kept mask edits to show, kept proposal to show, the draft to show, whether a draft was set aside) for an
        image segmented by the model (none without its prediction, or when the image comes back with its own painted
        mask). Neither kept entry when a correction of the image was stored after it (accepted in another napari, or
        by a script). Of the kept mask edits and the session's draft, the later: painted here since, or in Segment
        since. Sets what leaving the image leaves: the kept entries shown, or those the draft grew from."""
        key = getattr(prediction, "image_key", None)
        self._kept_to_leave = None
        if key is None or reshown_painted:
            return None, None, draft, False
        found = {role: self._kept_now(kept.get(role), key, shape, role) for role in (MASK, PROPOSAL)}
        found = {role: edits for role, edits in found.items()
                 if edits is not None and (earlier is None or edits.newer_than(earlier[0].created))}
        mask_edits, proposal = found.get(MASK), found.get(PROPOSAL)
        self._kept_to_leave = key if found else None
        set_aside = False
        if mask_edits is not None and draft is not None:
            if mask_edits.written_at > (self.session.draft_written_at(path) or 0.0):
                draft, set_aside = None, True
            else:
                mask_edits = None  # (the draft grew from them: its edits are theirs and more)
        return mask_edits, proposal, draft, set_aside

    def _kept_now(self, kept: Optional[KeptEdit], key: str, shape: tuple, role: str = MASK) -> Optional[KeptEdit]:
        """The image ``key``'s kept edits as they are now: those found when it was read ahead (one file check says they
        are unchanged), or read again: kept, accepted, left or painted again elsewhere since (trial of session 34:
        edits painted in Segment on the image read ahead were not shown, and the session's Accept dropped them)."""
        store = painted_mask_keeper(self.viewer).store
        if kept is not None and store.unchanged(kept, role):
            return kept
        return store.find(key, shape, role) if store.holds(key, role) else None

    def _on_set_changed(self) -> None:
        """The correction set changed (a correction stored or removed in any widget): the image on screen, accepted
        here, whose correction was just removed in *Correct & retrain* is said to be so (it went on saying "your
        accepted mask" and was exported unsaid: clinician trial of session 39), and the count line says how many
        accepted images are no longer in the set (it was said only of images shown since: verification of session 41).
        One file check per accepted image; an image is read only where its entry is gone."""
        if self.session is None or self.busy:
            return
        path = self.shown_path
        said = path is not None and path.name in self.session.corrections_removed
        with contextlib.suppress(OSError):
            self.session.follow_corrections(Path(str(self.corrections.value)))
        self._update_where()
        if path is None or path != self.session.current or self.session.status(path) != ACCEPTED \
                or path.name in self._pending_masks:
            return
        if not said and path.name in self.session.corrections_removed:
            self._image_line = (path, f"{path.name}: {CORRECTION_REMOVED_LINE}")
            self.say(self._image_line[1])

    def _accepted_mask_words(self, path: Path) -> str:
        """"your accepted mask", or whose it is when another annotator stored it (a colleague's correction was "your
        accepted mask": verification of session 41); from the entry's one record file."""
        entry_id, folder = self.session.entry_id(path), self.session.items.get(path.name, {}).get("set")
        folder = folder if isinstance(folder, str) else str(self.corrections.value)
        try:
            entry = CorrectionSet.read_entry(Path(folder), entry_id) if entry_id else None
        except (OSError, ValueError, TypeError):
            entry = None
        if entry is None or not entry.annotator or entry.annotator == current_annotator():
            return "your accepted mask"
        return f"the accepted mask ({entry.id}, {stored_when_by(entry)})"

    def _accepted(self, path: Path) -> bool:
        """Accepted, or being written as accepted (a skipped image with a given mask is not)."""
        return self.session.status(path) == ACCEPTED or path.name in self._pending_masks

    def _remove_shown(self, keep_painted: bool = False) -> None:
        """Remove the shown image's layers; ``keep_painted``: not a painted mask or proposal (its image was closed by
        the user and is shown again: the mask goes back to it)."""
        if self.image_layer is None:
            return
        key = self.image_layer.metadata.get(IMAGE_ID)
        for layer in [x for x in self.viewer.layers if x is self.image_layer or (key and x.metadata.get(IMAGE_ID) == key)]:
            if keep_painted and role_of(layer) in (MASK, PROPOSAL) and mask_was_edited(layer):
                continue
            if layer in self.viewer.layers:  # (edits of a mask left here were confirmed: not kept to restore)
                remove_layer(self.viewer, layer)
        self.image_layer = self.mask_layer = self.shown_path = None

    def _closed_by_user(self, path: Path) -> bool:
        """Whether ``path`` is the image on screen and its layer was closed (napari's delete, File > Close)."""
        return self.shown_path == path and self.image_layer is not None and self.image_layer not in self.viewer.layers

    def _on_layer_gone(self, event) -> None:
        layer = event.value
        if self.session is None or layer.metadata.get(REMOVED_BY_PLUGIN):
            return
        if same_layer(layer, self.image_layer):
            painted = self.mask_layer is not None and mask_was_edited(self.mask_layer)  # (said only when so: the
            with_mask = " with the mask you painted" if painted else ""  # verification of session 35 read it as a claim)
            self.say(f"{layer.name} was closed; Accept & next shows it again{with_mask}, Next goes on")
        elif (same_layer(layer, self.mask_layer) and not mask_was_edited(layer)  # (a painted one: the Restore notice)
              and self.image_layer in self.viewer.layers):  # (its image closed, it went too: the line above holds)
            self.say(f"{layer.name} was deleted; Accept & next shows it again")

    def _show_again(self, path: Path) -> None:
        """The image on screen was closed: shown again, with the mask painted on it (trial of session 30: Accept then
        said the image was 'still being segmented' for good, and on the last image Next left an empty canvas). When
        its prediction must be computed again, it is shown when done (``returned`` in :meth:`_compute`)."""
        self.show_current()
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            painted = mask_was_edited(self.mask_layer)
            held = (": a painted mask of it was deleted, and Restore deleted mask (below) brings it back"
                    if not painted and deleted_masks(self.viewer).holds_one_of(self.image_layer) else "")
            self.say(f"{path.name} was closed: shown again{' with your painted mask' if painted else ''}{held}; look at "
                     "it, then accept")

    def _update_where(self) -> None:
        # accepted images whose correction left the set stay counted as reviewed: said beside the count for as long as
        # it holds (the status line said it once, and the next image's line replaced it: trial of session 41)
        removed = len(self.session.corrections_removed)
        self.where.value = self.session.progress_text(frozenset(self._writing)) + (
            f" [{removed} accepted, no longer in the correction set]" if removed else "")

    def _on_display(self, value: str) -> None:
        if self._live_mask() is not None:
            set_mask_display(self.mask_layer, value)

    def _on_deleted_masks(self, what: str) -> None:
        super()._on_deleted_masks(what)
        if what == "restored":
            self._live_mask()  # a restored mask of the image on screen is its mask again

    def _live_mask(self):
        """The shown image's mask layer as it is in the viewer now (None when there is none): a mask deleted and
        restored is a new layer, and the old reference let Next overwrite the restored painting unasked (review of
        session 30)."""
        if self.mask_layer is not None and self.mask_layer in self.viewer.layers:
            return self.mask_layer
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            self.mask_layer = layer_of(self.viewer, self.image_layer, MASK)
            if self.mask_layer is not None:
                self._watch_edits(self.mask_layer)
            return self.mask_layer
        return None

    # ---- drafts: edits kept until accepted or left -------------------------------------------------------
    def _watch_edits(self, layer) -> None:
        layer = unproxied(layer)
        if layer not in self._draft_watched:
            self._draft_watched.add(layer)
            layer.events.paint.connect(self._on_mask_edited)  # a brush stroke (napari's undo step)
            layer.events.data.connect(self._on_mask_edited)  # pixels set at once (a script, a restore)

    def _on_mask_edited(self, _event=None) -> None:
        self._draft_timer.poke()  # the draft is written once painting pauses (or at least every few seconds)

    def _keep_draft(self) -> None:
        """Once painting pauses: the shown mask's edits to disk (:meth:`_submit_draft`)."""
        self._submit_draft(self._live_mask())

    def _flush_draft(self) -> None:
        """Write the draft still waiting for painting to pause, now (the window is closing): through the writer, so
        that it lands after any draft already queued, and waited for. The mask last shown is judged, in the viewer or
        not (closing the window may have removed it)."""
        if not self._draft_timer.isActive():
            return
        self._draft_timer.stop()
        with contextlib.suppress(RuntimeError, TimeoutError):
            written = self._submit_draft(self.mask_layer)
            if written is not None:
                written.result(timeout=10)

    def _submit_draft(self, layer):
        """Give the writer the shown image's draft: ``layer``'s edits, or the draft dropped when nothing is left edited
        (or the mask was accepted as it is). Returns the write's Future; None when the shown image has no mask to
        judge. A draft is a safety net: a disk that refuses it is met again at Accept."""
        path, session = self.shown_path, self.session
        if session is None or path is None or path != session.current or layer is None:
            return None
        data = np.asarray(layer.data)
        if data.ndim != 2:
            return None
        if not mask_was_edited(layer) or self._accepted_here == (path, image_hash(data)):
            return self._writer.submit(session.drop_draft, path)
        mask = data.copy()

        def keep():
            with contextlib.suppress(OSError):
                session.keep_draft(path, mask)

        return self._writer.submit(keep)

    def _leave_edits(self, path: Path) -> None:
        """The clinician chose to leave the edits (the second Next, Previous or Skip): their draft goes too."""
        self._draft_timer.stop()
        self._writer.submit(self.session.drop_draft, path)
        if self._kept_to_leave is not None and path == self.shown_path:  # (Segment's kept edits shown, or grown on)
            painted_mask_keeper(self.viewer).left(self._kept_to_leave)
            self._kept_to_leave = None

    # ---- moving ------------------------------------------------------------------------------------------
    @property
    def pending_writes(self) -> int:
        return len(self._writing)

    def _ready(self) -> bool:
        if self.session is None:
            self.say("open a session first")
            return False
        return True

    def _may_leave(self, action: str) -> bool:
        """False (and a warning) when the mask on screen has edits not accepted: Next, Previous or Skip would drop
        them when the next image takes its layers. The same action again within a minute leaves them."""
        path, layer = self.shown_path, self._live_mask()
        if path is None or path != self.session.current:
            return True
        # (accepted as it is: the last image, still on screen)
        mask_edited = layer is not None and mask_was_edited(layer) and \
            self._accepted_here != (path, image_hash(np.asarray(layer.data)))
        # a proposal painted on (a new model's mask beside edits) is the user's work too: the next image removes it
        painted_proposal = self.image_layer is not None and self.image_layer in self.viewer.layers and any(
            mask_was_edited(x) for x in layers_of(self.viewer, self.image_layer, PROPOSAL))
        if not mask_edited and not painted_proposal:
            return True
        if self._leave_asked.confirmed((path, action)):
            self._leave_edits(path)
            return True
        if mask_edited:
            self.say(f"your edits to {path.name}'s mask are not accepted: 'Accept & next' keeps them; press {action} "
                     "again to leave them")
        else:
            self.say(f"the proposal you painted on for {path.name} is not stored ('Accept & next' stores the mask); "
                     f"press {action} again to leave it")
        return False

    def next_image(self, _=None, confirmed: bool = False) -> bool:
        if not self._ready():
            return False
        last = self.session.position >= len(self.session) - 1
        if not last and not confirmed and not self._may_leave("Next"):
            return False
        if not self.session.next(save=False):
            if self._closed_by_user(self.session.current):
                self._show_again(self.session.current)
                return False
            self.say(f"that was the last image; {self.session.reviewed(frozenset(self._writing))} / {len(self.session)} reviewed. "
                     "Export the finished masks when done.")
            return False
        self._writer.submit(self.session.save)
        self.show_current()
        return True

    def previous_image(self, _=None) -> bool:
        if not self._ready() or self.session.position == 0 or not self._may_leave("Previous"):
            return False
        if not self.session.previous(save=False):
            return False
        self._writer.submit(self.session.save)
        self.show_current()
        return True

    def skip(self, _=None) -> bool:
        if not self._ready() or not self._may_leave("Skip"):
            return False
        self.session.skip(self.session.current, save=False)
        moved = self.next_image(confirmed=True)  # asked already, as Skip
        if not moved:
            self._writer.submit(self.session.save)
            self._update_where()  # the last image stays shown: its line says it is skipped (it stayed one behind)
        return moved

    def accept_and_next(self, _=None):
        """Store exactly the image and the mask on screen, then show the next image at once. The files are
        written in order by a writer thread (PNG encoding and fsync stall the viewer otherwise); returns
        that write's Future (None if refused)."""
        if not self._ready():
            return None
        path = self.session.current
        if self.failed_path == path:
            self.say(f"{path.name} could not be read or segmented: there is no mask to accept (Skip it, or Next)")
            return None
        if self._closed_by_user(path):
            self._show_again(path)
            return None
        if self.shown_path == path and self._live_mask() is None:  # its mask layer deleted
            if deleted_masks(self.viewer).holds_one_of(self.image_layer):
                self.say(f"{path.name}'s mask layer was deleted: Restore deleted mask (below) brings it back")
            else:  # nothing painted was lost: the mask shown is shown again
                self.shown_path = None
                self.show_current()
                self.say(f"{path.name}'s mask layer was deleted: its mask is shown again; look at it, then accept")
            return None
        if self.shown_path != path or self.mask_layer not in self.viewer.layers:
            self.say(f"{path.name} is still being segmented; accept once it is shown")
            return None
        if not in_view(self.viewer, self.image_layer, self.mask_layer):
            # another image drawn over it (a Batch folder run's results opened meanwhile), or it was hidden: its mask,
            # never seen, went into training as checked (trial of session 32). Shown now, and looked at first.
            bring_into_view(self.viewer, self.image_layer, self.mask_layer)
            ready_to_paint(self.viewer, self.mask_layer)  # (another image's mask stayed selected: trial of session 34)
            self._shown_at, self._replaced = time.monotonic(), False
            self.say(f"not accepted yet: {path.name} was not on screen (another image over it, or hidden); it is shown "
                     "now: look at it, then accept")
            return None
        if time.monotonic() - self._shown_at < ACCEPT_AFTER_S and not (self._replaced and mask_was_edited(self.mask_layer)):
            # The next image is usually ready at once (computed ahead): a double click or a key held down would
            # otherwise accept it unseen, and its raw model mask would go into training as checked. (A mask replaced in
            # place and painted since was seen.)
            self.say(f"{path.name}'s mask was just replaced by the new model's: look at it, then accept" if self._replaced
                     else f"{path.name} has only just appeared: look at it, then accept (a double click accepts once)")
            return None
        problem = not_a_correction_set(Path(self.corrections.value))
        if problem:  # nothing is written into the user's data folder
            self.say(f"not accepted: {problem}")
            return None
        made_with = self.mask_layer.metadata.get(MODEL_VERSION)
        question = self._other_domain.asks(path.name, self.mask_layer.metadata.get(ADVISED_MODEL), made_with,
                                           self.models.label(made_with), "Accept & next", SWITCH_MODEL)
        if question:
            self.say(question)
            return None
        image, mask = np.array(self.image_layer.data, copy=True), np.array(self.mask_layer.data, copy=True)
        meta = self.mask_layer.metadata
        started = meta.get(PREDICTED_AT)
        provenance = dict(model_version=meta.get(MODEL_VERSION, ""), predicted_mask=meta.get(PREDICTED_MASK),
                          model_settings=meta.get(MODEL_SETTINGS) or "", source_folder=folder_text(path),
                          seconds_spent=round(time.time() - started, 1) if started else None,
                          clicks=meta.get(CLICKS_METADATA))
        corrections, session, done = CorrectionSet(Path(self.corrections.value)), self.session, self._stored.done
        store_of_models = self.models.store
        # Asked in the writer thread only when automatic retraining is on (reading the store costs a disk read).
        policy = AutoRetrainPolicy(int(self.retrain_every.value)) if self.auto_retrain.value else None
        in_use = self.models.store.current_checkpoint() if policy is not None else None
        lines, version = (self.models.lines(), self.models.version_id()) if policy is not None else (None, None)

        # An unchanged mask over a correction the set already holds of this image (made in Correct & retrain, or an
        # earlier session) is refused once, in the writer thread (reading the set in the GUI thread cost 0.2-0.8 s on
        # a 300-entry set); Accept on it again, with the same mask, replaces it (trial of session 29: one unedited
        # Accept replaced a 2400-pixel correction silently, and the next round trained on the model's mask).
        attempt = (path.name, image_hash(mask))
        # a correction stored meanwhile by another window or annotator, which this mask did not start from, is not
        # replaced on one press (it was: clinician trial of session 40); masks accepted from this layer are the user's
        accepted_before = list(meta.get(ACCEPTED_MASKS, []))
        note_accepted(self.mask_layer, mask)  # Correct & retrain's Accept on this mask later is a continuation of it
        # edits painted on this image outside the session (a Segment result), kept on disk: superseded by this one
        painted_mask_keeper(self.viewer).correction_stored(image_hash(image))
        keep_edited = self._replace_confirmed != attempt
        self._replace_confirmed = None  # one confirmation, for the next Accept only

        def store():
            try:
                stored = store_correction(corrections, image, mask, source=path.name, keep_edited=keep_edited,
                                          revisit=provenance["model_version"] == ACCEPTED_EARLIER,
                                          seen_by_model=trained_on_by_version(store_of_models, provenance["model_version"]),
                                          accepted_from_layer=accepted_before, **provenance)
                entry_id, note = stored.entry.id, stored.describe()
            except DuplicateCorrection as err:  # (the correction shown, kept): the session points to that entry
                entry_id, note, stored = err.entry_id or session.entry_id(path), "unchanged: this mask was stored already", None
            except WouldDiscardCorrection as err:
                if isinstance(err, WouldReplaceCorrection):  # a painted mask, not stored: Previous shows it again
                    with contextlib.suppress(OSError):
                        session.keep_draft(path, mask)
                done.emit((path, (attempt, err)))
                return
            except (ValueError, OSError) as err:
                done.emit((path, err))
                return
            try:
                session.accept(path, mask, entry_id, corrections.root)
            except OSError as err:
                done.emit((path, err))
                return
            due = None
            if stored is not None:
                # What the GUI thread would otherwise read from disk after each stored correction (it
                # stalled the viewer by 10-20 ms per image): the model line's prospective scores, read
                # again from the set once it changed (cached for the GUI thread), and whether a round is due.
                with contextlib.suppress(OSError, ValueError):
                    version_scores_cached(corrections.root)
                    corrections_by_image(corrections.root)  # (for Segment's status on a mask of this image)
                    if policy is not None:  # (checkpoint in use, due, how many it has not trained on)
                        pending = policy.pending(corrections, seen_by(in_use), lines, version)
                        due = (in_use, pending >= policy.every_n, pending)
            done.emit((path, (stored, note, due)))

        future = self._writer.submit(store)
        self._writing.append(path.name)
        self._pending_masks[path.name] = mask
        self._accepted_here = (path, image_hash(mask))  # while it stays on screen (the last image), not "unaccepted"
        if self.session.next(save=False):
            self._writer.submit(self.session.save)
            self.show_current()
        else:
            self.say("that was the last image; export the finished masks when done")
        return future

    def _on_stored_elsewhere(self, layer, mask, corrections_root, entry_id, replaced=()) -> None:
        """*Correct & retrain* stored a mask in this session's correction set. From this session's layer (the image on
        screen): the image is accepted here too (its finished mask written for export), so Next does not call those
        edits unaccepted. Over the correction an image of this session was accepted with (another layer of that image,
        such as a Batch folder result): that image's finished mask follows, or export and training would disagree."""
        if self.session is None or Path(corrections_root).resolve() != Path(self.corrections.value).resolve():
            return  # stored in another set than this session's: its Accept is still to come
        path = self.shown_path
        if (path is None or path != self.session.current or self._live_mask() is None
                or not same_layer(layer, self.mask_layer)):
            names = {name for name, item in self.session.items.items()
                     if item.get("status") == ACCEPTED and item.get("entry") in set(replaced)}
            for image in [p for p in self.session.images if p.name in names]:
                self._record_acceptance(image, mask, entry_id, f"its finished mask is now the correction {entry_id} "
                                                               "stored by Correct & retrain, which replaced its own")
            return
        self._record_acceptance(path, mask, entry_id,
                                f"stored by Correct & retrain as {entry_id}; accepted in this session too")
        self._accepted_here = (path, image_hash(mask))

    def _record_acceptance(self, path: Path, mask: np.ndarray, entry_id: str, stored_line: str) -> None:
        """Record ``path`` as accepted with ``mask`` (a correction stored elsewhere), in the writer thread."""
        session = self.session
        corrections_dir = Path(str(self.corrections.value))  # (the set Correct & retrain stored it in: this one)

        def record():
            try:
                session.accept(path, mask, entry_id, corrections_dir)
            except OSError as err:
                self._stored.done.emit((path, err))
                return
            self._stored.done.emit((path, (None, stored_line, None)))

        self._writing.append(path.name)
        self._pending_masks[path.name] = mask
        self._writer.submit(record)

    def _on_stored(self, message) -> None:
        path, result = message
        self._writing.remove(path.name)
        if path.name not in self._writing:  # (accepted twice quickly: the later mask stays until its write is done)
            self._pending_masks.pop(path.name, None)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], WouldDiscardCorrection):
            attempt, err = result
            self._replace_confirmed = attempt  # the same mask accepted next, on this image, replaces it
            if self._accepted_here[0] == path:
                self._accepted_here = (None, None)
            here = "" if self.session is not None and self.session.current == path else " (Previous goes back to it)"
            if isinstance(err, WouldReplaceCorrection):  # (stored meanwhile by another window, or another annotator)
                self.say(f"{path.name} NOT stored: {err}; it was stored after this image was shown here (another window "
                         f"or annotator?). Your mask is kept{here}: Accept it again to replace that correction with "
                         "it, or Next to leave that one")
            elif here:  # back on it, the set is read again: that correction is shown
                self.say(f"{path.name} NOT stored: {err}. Previous goes back to it, that correction shown: keep it, or "
                         "edit it and accept")
            else:
                self.say(f"{path.name} NOT stored: {err}. Paint the correction there, or Accept it again unchanged to "
                         "replace that correction")
            self._update_where()
            return
        if isinstance(result, BaseException):
            if self._accepted_here[0] == path:  # not stored: leaving its edits must ask again
                self._accepted_here = (None, None)
            self.report_error(result, f"{path.name} NOT stored")
            return
        stored, note, due = result
        if stored is not None:
            self.accepted_since_retrain += 1
            self.models.use_correction_set(Path(self.corrections.value))  # (the set is one now: shared)
            self.models.scores_changed.emit()  # every model line's prospective score now counts this correction
            started = self.retrain_if_due(due)
        else:
            started = None
        self._update_where()
        # while a round runs, the status keeps saying so (the progress bar alone is easy to miss); else, with
        # automatic retraining on, how far the next round is (it counts earlier sessions' corrections too, which
        # a count of this session's accepts would hide)
        # (short: this line shares the status with the next image's; "new": neither trained on nor held out, as the
        # checkbox's tooltip says)
        unseen = "corrections new to the model in use"
        if started is not None and due is not None:  # this accept started it: why now (earlier sessions count too)
            note += (f"; retraining in the background on {due[2]} {unseen} (N = {int(self.retrain_every.value)}); "
                     "keep annotating")
        elif self.busy:
            note += "; retraining in the background, keep annotating"
        elif due is not None and not due[1]:
            note += f"; next automatic retrain at {int(self.retrain_every.value)} {unseen} ({due[2]} now)"
        if self.session is not None and path == self.session.current and self.session.position == len(self.session) - 1:
            note += "; that was the last image: export the finished masks when done"  # (it was said, then replaced)
        # The write ends after the next image is on screen: its line (your correction shown, ...) was replaced by this
        # one, unread (trial of session 31). Both are said.
        shown_line = self._image_line[1] if self._image_line[0] == self.shown_path != path else ""
        if self.session is not None and self.failed_path == self.session.current != path:  # its error stays said
            shown_line = self._failure_line  # (trial of session 35: replaced by this line, under another image)
        self.say(f"{path.name}: {note}" + (f". Now {shown_line}" if shown_line else ""))

    # ---- automatic retraining ----------------------------------------------------------------------------
    def retrain_if_due(self, answer=None):
        """Start a background retrain round when the model in use has not seen N of the set's corrections
        (read from disk by the policy, so it holds across restarts and roll-backs) and one was accepted
        since the last round started (so a version that was not adopted does not retrain in a loop).

        ``answer``: (checkpoint in use, due) as the writer thread found it after storing; used while that
        checkpoint is still the one in use, else the policy is asked here."""
        if not self.auto_retrain.value or self.accepted_since_retrain == 0 or self.busy:
            return None
        in_use = self.models.store.current_checkpoint()
        if answer is not None and answer[0] == in_use:
            due = answer[1]
        else:
            due = AutoRetrainPolicy(int(self.retrain_every.value)).due(CorrectionSet(Path(self.corrections.value)), in_use,
                                                                       self.models.lines(), self.models.version_id())
        return self.start_retrain() if due else None

    def start_retrain(self):
        corrections = CorrectionSet(Path(self.corrections.value))
        ours, others = split_by_line(self.models, corrections)
        if not ours:
            self.say(f"not retraining: the set's corrections were made with {models_of(self.models, others)}, another "
                     f"model's line than the model in use ({self.models.label()})")
            return None
        job = round_job(self.models.store, corrections, self._cancel, background=True, epochs=int(self.epochs.value),
                        device=self.device.value, entry_ids={e.id for e in ours})
        self.accepted_since_retrain = 0
        self._round_note = trained_on(self.models, ours, others)  # said with the round's result
        return self.start_work(job, self._on_round, "retraining in the background; keep annotating",
                               on_event=self._on_round_event)

    def _on_round_event(self, event) -> None:
        if event.kind == "step":
            self.progress.max = max(event.epochs * event.steps_per_epoch, 1)
            self.progress.value = (event.epoch - 1) * event.steps_per_epoch + event.step
            self.progress.label = f"retrain, ETA {fmt_eta(event.eta_s)}"
        elif event.kind == "scoring":  # (the status is the image's: the bar's label says the round's phase)
            self.progress.label = "retrain: scoring"

    def _on_round(self, outcome) -> None:
        self.progress.label = "progress"
        if outcome is None:
            self.say("retrain cancelled: the model in use is unchanged")
            return
        self.retrain_rounds += 1
        scores = f"{describe_scores(outcome.result)}; {self._round_note}"
        if not outcome.adoption.adopt:  # only on evidence: 10+ held-out images show the new one worse
            self.say(f"{outcome.adoption.reason} ({scores})")
            return
        not_used = adopt(self.models, outcome)  # when used, every widget hears of it; this one re-segments
        trained = with_reference(self._round_note, outcome.result)
        self.say(f"{not_used} ({trained})" if not_used else f"{outcome.adoption.reason}: {self.models.label()} ({trained})")
        # the image on screen is segmented again next, and that status would replace this one unread (trial of
        # session 29): it is said again in front of it
        self._adoption_note = None if not_used else (self.models.version_id(),
                                                     f"{outcome.adoption.reason}: {self.models.label()} ({trained})")

    def _on_finished(self) -> None:
        super()._on_finished()
        self.retrain_if_due()  # corrections accepted while the round ran may make the next one due

    def _on_model_switched(self) -> None:
        """A new model is in use: the shown image is segmented again (in place), the next one recomputed."""
        try:
            self._cache.clear()
            # (a mask accepted earlier or given is nobody's prediction to update; a correction from the set keeps its
            # mask, and the new model's probability goes beside it)
            if self.session is not None and self.shown_path is not None \
                    and self.session.starting_mask(self.shown_path) is None:
                shown_by = self.mask_layer.metadata.get(MODEL_VERSION) if self.mask_layer is not None else None
                if self._shown_correction is not None or self.models.related(shown_by, self.models.version_id()):
                    self._compute(self.shown_path, refresh=True)
                else:  # another model's line (the skin model put in use): this frame's mask is not replaced
                    self.say(f"now using {self.models.label()}: this image's mask is left as it is; "
                             "the next images are segmented with it")
                self._prefetch()
            elif self.session is not None and self.shown_path is not None:
                # an accepted (or given) mask on screen is not segmented again: the line went on naming the version
                # a Roll back had just left (folder-session trial of session 43)
                self.say(f"now using {self.models.label()}: this image's mask, accepted or given, is left as it is; the next "
                         "images are segmented with it")
                self._prefetch()
        except RuntimeError:  # the widget was closed
            self.models.changed.disconnect(self._on_model_switched)

    # ---- export and keys ---------------------------------------------------------------------------------
    def export(self, _=None) -> list:
        if not self._ready():
            return []
        target = str(self.export_folder.value)
        if target in ("", "."):
            self.say("choose a folder to export to")
            return []
        followed = self._follow_corrections()  # what is exported is what the set trains on
        try:
            written = self.session.export(Path(target), Path(str(self.corrections.value)))
        except (ValueError, OSError) as err:
            self.progress.value = 0
            self.say(f"not exported: {one_line(err)}")  # a refusal, not an error: one prefix
            return []
        # what is not in the folder, said (trial of session 35: a skipped image, corrected elsewhere, left out unsaid)
        skipped = [p.stem for p in self.session.images if self.session.status(p) == SKIPPED]
        open_ = [p.stem for p in self.session.images if self.session.status(p) is None and p.name not in self._writing]
        left = "; ".join(part for part in (
            f"{len(skipped)} skipped ({named_few(skipped)})" if skipped else "",
            f"{len(open_)} not accepted yet ({named_few(open_)})" if open_ else "") if part)
        left = f"; not exported: {left}" if left else ""
        self.say(f"{followed + ' ' if followed else ''}exported {len(written)} mask(s) to {target}, with "
                 f"{MANIFEST} (a row per image: its decision, correction, annotator and model){left}")
        # (the removed corrections' masks are exported, and said in ``followed``: accepted here, not in the set)
        return written

    def _bind_keys(self) -> None:
        actions = {"next": self.next_image, "previous": self.previous_image, "accept": self.accept_and_next,
                   "skip": self.skip}
        for name, key in KEYS.items():
            action = actions[name]
            self.viewer.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)
