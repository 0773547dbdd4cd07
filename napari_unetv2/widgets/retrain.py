"""Correct & retrain: accept edited masks into a correction set, fine-tune in a worker, keep versions.

The widget only gathers parameters, starts workers and updates layers; the round itself is
:func:`napari_unetv2.corrections.retrain.retrain_events` (the same fine-tuning routine as ``unetv2 finetune``).
"""
from __future__ import annotations

import time
import weakref
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, PushButton, Select, SpinBox
from qtpy.QtCore import Qt, QTimer

from ..annotation import DuplicateCorrection, WouldDiscardCorrection, WouldReplaceCorrection, store_correction
from ..annotation.accept import NOT_FROM_A_MODEL
from ..checkpoints.scores import last_round_line
from ..corrections import CorrectionSet
from ..corrections.auto_retrain import trained_on_by_version
from ..corrections.correction_set import image_hash, not_a_correction_set, stored_when_by
from ..engine.finetune import holds_out
from ..engine.pairs import find_pairs
from ..inference.settings import settings_of_prediction
from ..interactive import CLICKS_METADATA
from ..remembered import correction_set_chosen_last, remember
from ..storage import default_corrections_dir
from ._base import SecondPress, WorkerWidget, named_few, narrow_chooser, one_line, wrapping_label
from ._kept_edits import IMAGE_KEY, painted_mask_keeper
from ._layers import (
    ACCEPTED_HASH,
    ACCEPTED_MASKS,
    ADVISED_MODEL,
    ATTENTION,
    COMPARISON,
    MASK,
    MODEL_SETTINGS,
    MODEL_VERSION,
    PREDICTED_AT,
    PREDICTED_MASK,
    PROBABILITY,
    PROPOSAL,
    ROLE,
    SESSION_IMAGE,
    belongs_to,
    bring_into_view,
    converted_mask_note,
    file_name_of,
    folder_of,
    image_for,
    in_view,
    is_source_image,
    layer_of,
    layers_of,
    mask_was_edited,
    note_accepted,
    plane_on_screen,
    role_of,
    same_layer,
    settings_to_segment_again,
    show_comparison,
    show_prediction,
    spatial_shape,
    unproxied,
)
from ._loss_plot import LossPlot
from ._other_domain import OtherDomainQuestion
from ._rounds import (
    adopt,
    changed_note,
    describe_scores,
    fmt_eta,
    left_out,
    models_of,
    round_job,
    split_by_line,
    trained_on,
    with_reference,
)
from ._state import BUNDLED, IN_USE, prospective_note
from ._workers import make_worker, once
from .segment import CONFIRM_WITHIN_S, follow_active_image, keep_choices_in_order

ROLL_BACK_AGAIN_AFTER_S = 0.5  # a second Roll back sooner than this is the second click of a double click
FOLLOW_THE_SET_MS = 5000  # how often the correction set's folder is listed for another napari's accepts and removals


def short_label(label: str, version: Optional[str]) -> str:
    """A model as a layer's name can show it: ``bundled skin model``, ``version 98596ce95af5``. The layer list shortens
    long names in the middle, and "IMD021 mask by fine-tuned 98596ce95af5 (from d1951362bbcb)" read as the comparison
    with the bundled skin model, "IMD021 mask …1951362bbcb)" (folder-session trial of session 43)."""
    if label.startswith("bundled "):
        return label.split(" (")[0]
    return f"version {version}" if version else label


def compared_with(mask, other: np.ndarray, models, settings: str = "") -> str:
    """How another version's mask differs from the image's mask on screen, in one sentence (``settings``: those the
    other was made with, said beside the mask's own when they differ)."""
    if mask is None:
        return "the image has no mask of its own to compare with."
    own = np.asarray(mask.data) > 0
    if own.shape != np.shape(other):
        return f"its mask ({mask.name}) is of another shape: not compared pixel by pixel."
    other = np.asarray(other) > 0
    differ, both = int(np.count_nonzero(own != other)), int(np.count_nonzero(own & other))
    total = int(np.count_nonzero(own)) + int(np.count_nonzero(other))
    dice = 1.0 if total == 0 else 2 * both / total
    made_by, own_settings = mask.metadata.get(MODEL_VERSION), mask.metadata.get(MODEL_SETTINGS) or ""
    whose = ("your edited mask" if mask_was_edited(mask) else
             f"its mask, {NOT_FROM_A_MODEL[made_by]}" if made_by in NOT_FROM_A_MODEL else  # (no version: a session's)
             f"the mask of {models.label(made_by)}" if made_by else "its mask (of unknown origin)")
    if own_settings and settings and own_settings != settings and made_by not in NOT_FROM_A_MODEL:
        whose += f" at {own_settings}"  # (a difference of settings, not of versions, is then part of it)
    return (f"it differs from {whose} ('{mask.name}') by {differ:,} pixels ({100 * differ / own.size:.1f} % of the "
            f"image; Dice {dice:.3f} between the two).")


class RetrainWidget(WorkerWidget):
    def __init__(self, napari_viewer, corrections_dir: Optional[Path] = None, store_dir: Optional[Path] = None):
        super().__init__(napari_viewer, store_dir)
        self.store = self.models.store
        self.store.remove_stale_runs()
        self.image = ComboBox(label="image", choices=self._image_layers,
                              tooltip="The image to store; follows the layer you select in the layer list.")
        narrow_chooser(self.image)
        keep_choices_in_order(self.image)
        self.mask = ComboBox(label="mask", choices=self._mask_layers, nullable=True,
                             tooltip="Any Labels layer of the image's size: by default the image's own mask.")
        narrow_chooser(self.mask)
        keep_choices_in_order(self.mask)
        # the set chosen last (the default set otherwise), before the list is first filled: it showed another set's
        # entries until the next refresh (trial of session 41)
        chosen_last = correction_set_chosen_last() if corrections_dir is None else None
        self.folder = FileEdit(label="correction set", mode="d",
                               value=str(chosen_last or corrections_dir or default_corrections_dir()),
                               tooltip="The folder where accepted corrections are kept (reopens after a restart).")
        self.accept_button = PushButton(text="Accept correction",
                                        tooltip="Store the image and the chosen mask, as on screen, in the correction set.")
        self.entries = Select(label="corrections", choices=self._entry_choices,
                              tooltip="The corrections stored in the set on disk.")
        # Long file names shorten in the middle (the pixels changed and the date stay in sight) instead of hiding the
        # end behind a horizontal scroll bar
        self.entries.native.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.entries.native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.entries.native.model().rowsInserted.connect(self._whole_entry_as_tooltip)
        self._whole_entry_as_tooltip(None, 0, self.entries.native.count() - 1)  # those listed on creation
        self.remove_button = PushButton(text="Remove selected", tooltip="Take the selected corrections out of the set, "
                                                                         "into its history (a second press confirms).")
        self.train_parts = ComboBox(label="train", choices=["sdi-decoder", "all"], value="sdi-decoder",
                                    tooltip="sdi-decoder: fine-tune SDI, decoder and heads only (fast on CPU); all: every layer.")
        self.epochs = SpinBox(label="epochs", min=1, max=500, value=20, tooltip="Passes over the corrections per round.")
        self.replay = FileEdit(label="replay pairs (optional)", mode="d", value="",
                               tooltip="A folder of earlier image/mask pairs mixed in, so the model does not forget them.")
        self.retrain_button = PushButton(text="Retrain", tooltip="Fine-tune the model in use on the corrections, "
                                                                  "in the background.")
        # the newest round's line from its version's JSON: after a restart it said "-" (stop note 41's list)
        self.scores = wrapping_label("last round", last_round_line(self.models.store),
                                     tooltip="The last round's scores: Dice on held-out corrections "
                                     "before -> after it (with 48+ corrections), and on the original domain's sample "
                                     "images before and after (forgetting shows there).")
        self.versions = ComboBox(label="versions", choices=self._version_choices,
                                 tooltip="Every stored model; shows the one in use.")
        keep_choices_in_order(self.versions)  # their labels carry scores that change
        narrow_chooser(self.versions)
        self.use_button = PushButton(text="Use this version",
                                     tooltip="Put the selected version in use and segment the open images again.")
        self.rollback_button = PushButton(text="Roll back", tooltip="Return to the model used before the current one.")
        self.compare_button = PushButton(text="Compare on image",
                                         tooltip="Run the selected version on the chosen image and outline its mask in "
                                                 "yellow beside the image's own (for looking; nothing is stored).")
        self._start_buttons = [self.retrain_button]
        self.extend([self.image, self.mask, self.folder, self.accept_button, self.entries, self.remove_button,
                     self.train_parts, self.epochs, self.replay, self.retrain_button])
        self.add_common()
        self.extend([self.scores, self.versions, self.use_button, self.rollback_button, self.compare_button])
        self.plot = LossPlot(napari_viewer)
        self.controls.layout().addWidget(self.plot)

        self.accept_button.changed.connect(self.accept_correction)
        self.remove_button.changed.connect(self.remove_selected)
        self.retrain_button.changed.connect(self.retrain)
        self.use_button.changed.connect(self.use_selected_version)
        self.rollback_button.changed.connect(self.roll_back)
        self.compare_button.changed.connect(self.compare_on_image)
        # the folder session stores and replaces corrections in the same set: the list showed an entry it had replaced
        # (Remove selected on it: "No correction ...") and not the new one (trial of session 32)
        self._last_listing: Optional[set] = None  # provenance/ as _list_follows_the_set last listed it
        self.models.scores_changed.connect(self.guarded(self._list_follows_the_set))
        # ... and another napari (or workstation) on the same set: its accepts and removals listed within seconds (the
        # list showed an entry removed there, and none of its new ones: trial of session 40); a folder listing a beat
        self._set_watch = QTimer(self.native)
        self._set_watch.setInterval(FOLLOW_THE_SET_MS)
        self._set_watch.timeout.connect(self.guarded(self._list_follows_the_set))
        self._set_watch.start()
        self.folder.changed.connect(self._on_folder)
        self.folder.line_edit.native.editingFinished.connect(self.guarded(lambda: self._on_folder(typing=False)))
        self.models.correction_set_changed.connect(self.guarded(self._follow_the_chosen_set))
        self._folder = Path(self.folder.value)  # the set in use: a folder that is not a set is refused, this one stays
        self._remove_asked = SecondPress(CONFIRM_WITHIN_S)  # warned of deleting (the selected corrections)
        self._watched_images = weakref.WeakSet()  # image layers whose pixel replacements re-follow the mask
        self.image.changed.connect(self._mask_follows_image)
        follow_active_image(self, self.image)
        self.viewer.layers.selection.events.active.connect(self._mask_follows_active)
        self._mask_follows_image()  # the chooser may start on None (it can be emptied): its image's mask now
        self.segment_worker = None
        self._segment_worker_done = True  # (a worker's is_running is False until its thread has begun)
        self._discard_seen: Optional[tuple] = None  # (mask layer, its pixels) once warned: Accept again replaces
        self._other_domain = OtherDomainQuestion()  # asked before a correction trains a line the image is not for
        self._rolled_back: tuple = (-1e9, None)  # when this widget last rolled back, and to which version
        self._round_note = ""  # what the running round trains on (_rounds.trained_on), said with its result
        self.last_version = None
        self.resegmented = 0  # completed re-segmentation rounds
        self._show_current()
        self._say_store_problems()

    def _say_store_problems(self) -> None:
        """What the store had to recover from or leave out, said once when the widget opens (not only in a log)."""
        self.store.versions()
        damaged = (f"stored version(s) {', '.join(self.store.damaged)} cannot be used (model.json missing or damaged) "
                   "and are not listed" if self.store.damaged else "")
        missing = self.store.missing_current_note()
        missing += ": the bundled model runs in its place" if missing else ""
        problems = [x for x in (self.store.warning, damaged, missing) if x]
        if problems:
            self.say("; ".join(problems))

    # ---- choosers ------------------------------------------------------------------------------------
    @property
    def correction_set(self) -> CorrectionSet:
        return CorrectionSet(Path(self.folder.value))

    def _image_layers(self, _=None) -> list:
        return [layer for layer in self.viewer.layers if is_source_image(layer)]

    def _mask_layers(self, _=None) -> list:
        """Labels layers that fit the chosen image (its own mask first)."""
        from napari.layers import Labels

        image = self.image.value if hasattr(self, "image") else None
        if image is None:
            return []
        shape = spatial_shape(image)
        fits = [x for x in self.viewer.layers if isinstance(x, Labels) and tuple(x.data.shape) == shape]
        own = layer_of(self.viewer, image, MASK)
        return sorted(fits, key=lambda x: x is not own)

    def _mask_follows_image(self, _=None) -> None:
        """The image's own mask; without one, a Labels layer of its size that belongs to no other image (one the user
        drew), else none: another image's mask must never stay chosen for this image."""
        self.mask.reset_choices()
        image = self.image.value
        own = layer_of(self.viewer, image, MASK) if image is not None else None
        self._watch_pixels(image)
        if own is not None and own in self.mask.choices:
            self.mask.value = own
            return
        free = [x for x in self.mask.choices
                if x is not None and belongs_to(self.viewer, x, image) and x.metadata.get(ROLE) in (None, MASK)]
        if free:
            self.mask.value = free[0]
        elif self.mask.choices:
            self.mask.value = None

    def _watch_pixels(self, image) -> None:
        """Follow the image's mask again when the image's pixels are replaced: the folder session shows its next image
        in the same layers, and a frame of another size left the mask chooser empty (the mask of the old size no longer
        fit), so that Accept here said there was no mask (trial of session 31). Once the session has replaced the
        mask too: on the next turn of the event loop."""
        if image is None or unproxied(image) in self._watched_images:
            return
        self._watched_images.add(unproxied(image))

        def refollow(_event=None) -> None:
            if not self.closed and same_layer(self.image.value, image):
                self._mask_follows_image()
        image.events.data.connect(self.guarded(lambda _event: QTimer.singleShot(0, self.guarded(refollow))))

    def _mask_follows_active(self, _=None) -> None:
        layer = self.viewer.layers.selection.active
        # Followed: a mask, or a layer the user drew, of the chosen image (or of none). Not a proposal beside an edited
        # mask, nor a sample's ground truth selected to compare (Accept stored it instead of the painted correction),
        # nor another image's mask (napari makes a mask just added for another image the active layer for a moment).
        # Choosing any of those as the correction is done in the list (the status then names it). (Session 25.)
        if (layer is not None and layer in self.mask.choices and layer.metadata.get(ROLE) in (None, MASK)
                and belongs_to(self.viewer, layer, self.image.value)):
            self.mask.value = layer

    def _entry_choices(self, _=None) -> list:
        """Read from disk each time: the list on screen is always the set on disk (a folder that is no set yet is not
        made one by listing it: a path typed letter by letter made a set at each keystroke; the first Accept makes it)."""
        entries = self.correction_set.entries() if (Path(self.folder.value) / "provenance").is_dir() else []
        self._entry_sources = {e.id: e.source for e in entries}  # (named by Remove selected)
        # the list shows the file and the pixels changed (shortened in the middle when long); its tooltip the rest
        self._entry_details = {e.id: f"{e.source}: {e.pixels_changed} pixels changed, {stored_when_by(e)} (id {e.id})"
                               for e in entries}
        labels = [f"{e.source} ({e.pixels_changed} px changed)" for e in entries]
        # the list keys its items by their text: two entries read alike would show as one
        twice = {label for label in labels if labels.count(label) > 1}
        return [(f"{label} [{e.id}]" if label in twice else label, e.id) for label, e in zip(labels, entries)]

    def _whole_entry_as_tooltip(self, _parent, first: int, last: int) -> None:
        listed = self.entries.native
        for row in range(first, last + 1):  # however the list was filled (a refresh, napari's reset of choices)
            item = listed.item(row)
            item.setToolTip(self._entry_details.get(item.data(Qt.ItemDataRole.UserRole), item.text()))

    def _on_folder(self, _=None, typing: Optional[bool] = None) -> None:
        """Another set chosen: checked, made a set, remembered and listed. While a path is being typed (each keystroke
        changes the field) a folder that is no set yet is only listed as empty: it was made a set at each keystroke
        (verification of session 41); it is made one when the typing ends (Enter, or the field left)."""
        typing = self.folder.line_edit.native.hasFocus() if typing is None else typing
        folder = Path(self.folder.value)
        if typing:  # (listed as it is; not shared: the session's field took "/tm" while "/tmp/..." was typed)
            self.entries.reset_choices()
            return
        problem = not_a_correction_set(folder)
        if problem:
            self.folder.value = str(self._folder)  # nothing is written into the user's data folder
            self.say(f"not changed: {problem}")
            return
        try:
            CorrectionSet(folder)  # (a set from now on: offered in the next napari, shared with a folder session)
        except OSError as err:
            self.say(f"{folder} cannot be a correction set: {one_line(err)}")
            return
        self._folder = folder
        remember(corrections=self._folder)
        self.refresh_entries()

    def _follow_the_chosen_set(self) -> None:
        """Another dock (a folder session) chose another correction set: this one lists and stores into it too."""
        chosen = self.models.corrections_dir
        if chosen is not None and Path(chosen) != Path(self.folder.value):
            self.folder.value = str(chosen)  # (_on_folder: checked, remembered, listed)

    def _list_follows_the_set(self) -> None:
        """Re-read the list when the set on disk holds other entries than it shows (another widget stored or replaced
        one). A listing of the provenance folder decides; the entries themselves are read only when it differs."""
        try:
            on_disk = {p.stem for p in (Path(self.folder.value) / "provenance").glob("*.json")}
        except OSError:
            return
        # (a listing unchanged since the last look is not compared again: an entry on disk that the list leaves out,
        # damaged or missing its mask, read the whole set every 5 s: cold review of session 40)
        if on_disk == self._last_listing:
            return
        self._last_listing = on_disk
        if on_disk != set(getattr(self, "_entry_details", {})):
            self.entries.reset_choices()
            self._whole_entry_as_tooltip(None, 0, self.entries.native.count() - 1)

    def refresh_entries(self, _=None) -> None:
        self.entries.reset_choices()
        self.entries.value = []
        self._whole_entry_as_tooltip(None, 0, self.entries.native.count() - 1)  # entries kept, their details may not be
        # The model line and the versions list show prospective scores from this set; a folder session stores into it.
        self.models.use_correction_set(Path(self.folder.value))
        self.models.scores_changed.emit()  # this widget's model line and every other widget's
        self.versions.reset_choices()

    # ---- corrections -------------------------------------------------------------------------------
    def accept_correction(self, _=None):
        """Store the chosen image with the chosen Labels layer (as on screen) in the correction set."""
        image, mask_layer = self.image.value, self.mask.value
        if image is None:
            self.say("open an image first")
            return None
        if mask_layer is None:
            self.say(f"no mask for {image.name}{converted_mask_note(self.viewer, image)}: segment it, or draw a Labels "
                     f"layer of its size {spatial_shape(image)}")
            return None
        if role_of(mask_layer) == COMPARISON:
            # another version's raw mask, shown for looking: stored, it recorded "3410 pixels changed" against nothing
            # and no prospective score (cold review of session 43)
            self.say(f"not stored: '{mask_layer.name}' is another version's mask shown for comparison; to correct that "
                     "version's mask, put it in use ('Use this version': the image is segmented again with it), paint "
                     "on the image's mask, then Accept")
            return None
        if not in_view(self.viewer, image, mask_layer):  # a mask never seen is not stored for training
            bring_into_view(self.viewer, image, mask_layer)
            self.say(f"not stored yet: {mask_layer.name} was not on screen (hidden, or under another image); it is "
                     "shown now: look at it, then press Accept again")
            return None
        data, mask = np.asarray(image.data[0] if image.multiscale else image.data), np.asarray(mask_layer.data)
        predicted = mask_layer.metadata.get(PREDICTED_MASK)
        # the image's file name where it came from a file, as *Annotate a folder* names its corrections (one
        # image was "frame" here and "frame.png" there; trial of session 28), else the layer's name
        # (2-D only: a stack opened from several files names its first; its slices keep the layer's name)
        opened_from = file_name_of(image) if mask.ndim == 2 else None
        source, where = (opened_from or image.name), ""
        if mask.ndim == 3:  # a stack: store the slice on screen
            z, why_not = plane_on_screen(self.viewer, mask_layer)
            if z is None:
                self.say(f"not stored: {image.name} is a stack and {why_not}")
                return None
            image_z = plane_on_screen(self.viewer, image)[0]
            if image_z != z:  # placed apart (another scale or offset along the frames): the pair on screen is no pair
                self.say(f"not stored: the canvas shows frame {image_z} of {image.name} under frame {z} of "
                         f"{mask_layer.name} (the two layers are placed differently along the frames)")
                return None
            data, mask, source, where = data[z], mask[z], f"{image.name}_z{z}", f" (slice {z})"
            predicted = predicted[z] if predicted is not None and np.ndim(predicted) == 3 else None
        started = mask_layer.metadata.get(PREDICTED_AT)
        attempt = (id(mask_layer), image_hash(mask))
        made_with, advised = mask_layer.metadata.get(MODEL_VERSION, ""), mask_layer.metadata.get(ADVISED_MODEL)
        settings = mask_layer.metadata.get(MODEL_SETTINGS) or ""
        own = layer_of(self.viewer, image, MASK)
        if not made_with and own is not None:
            # a layer drawn by hand: of the line of the model that segmented the image (a dermoscopy image's drawn
            # mask trained the polyp model, as a correction of unknown origin); no settings of it (not its mask)
            made_with, advised = own.metadata.get(MODEL_VERSION, ""), own.metadata.get(ADVISED_MODEL)
        question = self._other_domain.asks(source, advised, made_with, self.models.label(made_with), "Accept",
                                           "choose {model} in Segment's 'model'")
        if question:
            self.say(question, about=image)
            return None
        try:
            stored = store_correction(self.correction_set, data, mask, source=source,
                                      model_version=made_with, predicted_mask=predicted, model_settings=settings,
                                      source_folder=folder_of(image) or "",
                                      seconds_spent=round(time.time() - started, 1) if started else None,
                                      clicks=mask_layer.metadata.get(CLICKS_METADATA),
                                      keep_edited=self._discard_seen != attempt,
                                      seen_by_model=trained_on_by_version(self.store, made_with),
                                      accepted_from_layer=mask_layer.metadata.get(ACCEPTED_MASKS, []))
        except DuplicateCorrection as err:
            self.say(f"not added: {err}")
            return None
        except WouldReplaceCorrection as err:  # said once; the same mask accepted again replaces it
            self._discard_seen = attempt
            self.say(f"not stored yet: {err}. Press Accept again to replace it with this mask.", about=image)
            return None
        except WouldDiscardCorrection as err:  # said once; the same mask accepted again replaces it
            self._discard_seen = attempt
            self.say(f"not stored yet: {err}. Press Accept again to replace it with this unchanged mask, or paint the "
                     "correction on it first.")
            return None
        except (ValueError, OSError) as err:
            self.say(f"not accepted: {err}")
            return None
        self._discard_seen = None
        if where == "":  # the whole (2-D) layer was stored, its hash taken above: closing its image may hide it
            mask_layer.metadata[ACCEPTED_HASH] = attempt[1]
            self.models.correction_stored.emit(mask_layer, mask.copy(), self.correction_set.root, stored.entry.id,
                                               list(stored.replaced))
        note_accepted(mask_layer, mask)
        if where == "":  # edits kept for this image from before are superseded by what was stored
            key = mask_layer.metadata.get(IMAGE_KEY) if belongs_to(self.viewer, mask_layer, image) else None
            if key is None and not image.multiscale:
                key = image_hash(np.asarray(image.data))
            painted_mask_keeper(self.viewer).correction_stored(key)
        self.refresh_entries()
        named = "" if same_layer(mask_layer, own) else f"stored the layer {mask_layer.name!r}: "
        self.say(f"{image.name}{where}: {named}{stored.describe()}", about=image)
        return stored.entry

    def remove_selected(self, _=None, confirmed: bool = False) -> list:
        """Take the selected corrections out of the set (into its history, whence `unetv2 corrections restore` brings
        them back), on a second press: one press deleted them without a word (clinician trial of session 39). Returns
        the ids removed."""
        chosen = list(self.entries.value)
        if not chosen:
            self.say("select the corrections to remove in the list first")
            return []
        names = [self._entry_sources.get(entry_id, entry_id) for entry_id in chosen]
        learned = self._learned_note(chosen)
        if not (confirmed or self._remove_asked.confirmed(tuple(chosen))):
            self.say(f"Remove {len(chosen)} correction(s) from the set ({named_few(names)}: no round trains on them from "
                     "now on; the image, the mask and its record are kept in the set's history/ folder, and `unetv2 "
                     "corrections restore` brings them back; a folder session that accepted the image keeps its mask "
                     f"and exports it, marked in its manifest)?{learned} Press Remove selected again to remove them.")
            return []
        removed, failed = [], []
        for entry_id in chosen:
            try:
                self.correction_set.remove(entry_id)
                removed.append(entry_id)
            except ValueError as err:  # removed meanwhile (another widget, another process)
                failed.append(one_line(err))
        self.refresh_entries()
        if removed:
            self.models.scores_changed.emit()  # the set changed: prospective scores, a folder session's accepted images
        said = [f"removed {len(removed)} correction(s) from the set: "
                f"{named_few([n for n, i in zip(names, chosen) if i in removed])} (kept in its history: `unetv2 "
                "corrections history` lists them)." if removed else "", learned.strip() if removed else "", *failed]
        self.say(" ".join(part for part in said if part))
        return removed

    def _learned_note(self, chosen: list) -> str:
        """" The model in use learned from ...": what removing corrections does not undo, and how to undo it ("" when
        the model in use learned none of them)."""
        from ..corrections.auto_retrain import learned_already

        try:
            entries = [e for e in self.correction_set.entries() if e.id in set(chosen)]
            found = learned_already(self.store, self.models.version_id(), entries)
        except (OSError, ValueError):
            return ""
        if found is None:
            return ""
        which = named_few([self._entry_sources.get(e.id, e.source) for e in found.learned])
        undo = (f" to undo it, put {self.models.label(found.before)} in use (choose it under 'versions', press 'Use this "
                "version'), then Retrain" if found.found else
                f" the version before it, {found.before}, is not in the model store" if found.before else
                " no version of its line before it is known here")
        return (f" The model in use, {self.models.label()}, learned from {len(found.learned)} of them ({which}): removing "
                f"them does not take that out of it, nor out of versions fine-tuned from it;{undo}.")

    # ---- versions ------------------------------------------------------------------------------------
    def _version_choices(self, _=None) -> list:
        choices = []
        for label, value in self.models.choices()[1:]:  # bundled + stored versions (the "in use" entry is the status)
            note = prospective_note(self.models.version_id(value), self.models.corrections_dir)
            choices.append((f"{label}; {note}" if note else label, value))
        return choices

    def model_choice(self):
        return IN_USE

    def _show_current(self) -> None:
        current = self.models.choice_of(self.store.current)
        self.versions.value = current if current in self.versions.choices else BUNDLED
        self.refresh_model_line()

    def _on_model_changed(self) -> None:
        super()._on_model_changed()
        try:
            self._show_current()
            self._refresh_round_line()
        except RuntimeError:
            pass

    def _refresh_round_line(self) -> None:
        """The *last round* line, with the model in use now when the round's version it put in use is no longer in use
        (its decision read as today's after a Roll back: clinician trial of session 43)."""
        if getattr(self, "scores", None) is None:
            return
        shown = getattr(self, "_round_shown", None)
        if shown is None:  # (no round in this napari: from the newest round's JSON, which says it too)
            self.scores.value = last_round_line(self.models.store)
            return
        text, version, put_in_use = shown
        moved = put_in_use and self.models.version_id() != version
        self.scores.value = text + (f"; since then, {self.models.label()} in use" if moved else "")

    def use_selected_version(self, _=None):
        choice = self.versions.value
        try:  # (a version removed meanwhile by another window or process: said, not a traceback)
            self.models.use(None if choice == BUNDLED else choice)
        except (OSError, ValueError) as err:
            self.say(f"not put in use: {one_line(err)}")
            return None
        return self.resegment(f"now using {self.models.label()}")

    def roll_back(self, _=None):
        at, to = self._rolled_back
        if time.monotonic() - at < ROLL_BACK_AGAIN_AFTER_S and self.models.version_id() == to:
            # a double click went back two versions and said one
            self.say(f"rolled back to {self.models.label()} just now; press again to go further back")
            return None
        left, left_label = self.models.version_id(), self.models.label()
        try:
            self.models.roll_back()
        except ValueError as err:
            self.say(str(err))
            return None
        back = self.models.version_id()
        self._rolled_back = (time.monotonic(), back)
        note = f" (in use before {left_label})"
        passed = (f"; passed over {', '.join(self.store.passed_over)} (missing from the model store)"
                  if self.store.passed_over else "")
        if left and back and back != left and left in self.models.lines().lineage(back):
            # Roll back undoes the last change of the model in use: after 'Use' of an older version, it returns to the
            # newer one, which was said as if it were older (clinician trial of session 43)
            note = (f", a version fine-tuned from {left_label}: Roll back undoes the last change of the model in use; "
                    "to go to an older version, choose it under 'versions' and press 'Use this version'")
        return self.resegment(f"rolled back to {self.models.label()}{note}{passed}")

    def compare_on_image(self, _=None):
        """The version selected under 'versions' run on the chosen image (at the settings its mask was made with), its mask
        outlined beside the image's own mask, and how far the two differ said: after *Use this version* the old
        version's mask was gone from the screen, and nothing showed two versions side by side (clinician trial of
        session 43). Nothing is stored, no model is put in use. Returns the worker (None when refused)."""
        image, choice = self.image.value, self.versions.value
        if image is None or image not in self.viewer.layers:
            self.say("choose an image to compare on first")
            return None
        if self.segment_worker is not None and not self._segment_worker_done:
            self.say("the open images are being segmented again (or a comparison runs): compare once that is done")
            return None
        try:  # (a version removed by another window or process meanwhile: said, not a traceback)
            version, label, checkpoint = self.models.version_id(choice), self.models.label(choice), self.models.checkpoint(choice)
        except (OSError, ValueError) as err:
            self.say(f"not compared: {one_line(err)}")
            return None
        data, rgb, multiscale, name = image.data, bool(image.rgb), bool(image.multiscale), image.name
        settings, device, models = settings_to_segment_again(self.viewer, image), self.device.value, self.models

        def job():
            predictor = models.predictor(checkpoint, device)
            pixels = data[0] if multiscale else data
            return predictor.predict(np.asarray(pixels), rgb=rgb, return_attention=False, **settings)

        def shown(prediction) -> None:
            if image not in self.viewer.layers or image.data is not data:  # closed, or another image in its layer
                self.say(f"not compared: {name} was closed or replaced meanwhile")  # (its layer may show another now)
                return
            mask = layer_of(self.viewer, image, MASK)
            made_with = settings_of_prediction(prediction)
            outline = show_comparison(self.viewer, image, prediction.mask, version or "", short_label(label, version),
                                      made_with)
            # the image with its mask and the outline on screen, its mask selected: the choosers follow the selection,
            # and an image chosen in the list (another selected) jumped back to that one, its outline hidden
            # (verification of session 43); hidden for another image, its outline was drawn over that one
            bring_into_view(self.viewer, image, *[x for x in (mask, outline) if x is not None])
            self.viewer.layers.selection.active = mask if mask is not None else image
            made_by = mask.metadata.get(MODEL_VERSION) if mask is not None else None
            other_line = (" It is of another model line than the mask's (made for other images)."
                          if made_by and version and made_by not in NOT_FROM_A_MODEL
                          and self.models.lines().of_another_line(version, made_by) else "")
            self.say(f"{label}'s mask of {image.name} at {made_with or 'its settings'} outlined in yellow "
                     f"('{outline.name}'): {compared_with(mask, prediction.mask, self.models, made_with)}{other_line} "
                     "For looking only: nothing was stored and the model in use is unchanged ('Use this version' puts "
                     "it in use).")

        shown = once(shown)  # (it names the image: forgotten once called, or once the worker ended)
        worker = self.segment_worker = make_worker(job, _ignore_errors=True)
        self._segment_worker_done = False
        worker.returned.connect(self.guarded(shown))
        worker.errored.connect(self.guarded(lambda err: self.report_error(err, "comparing")))
        worker.finished.connect(shown.forget)
        worker.finished.connect(partial(self._on_segment_worker_done, worker))
        self.say(f"running {label} on {image.name}...")
        worker.start()
        return worker

    def _on_segment_worker_done(self, worker) -> None:
        if worker is self.segment_worker:  # (not an earlier one's end while a later one runs)
            self._segment_worker_done = True

    def _last_prediction_by(self, image) -> Optional[str]:
        """The version whose prediction the image shows last: its proposal's when its mask is edited and has one (a
        proposal stays when the edits are undone and the mask is segmented again: then the mask's is the last)."""
        mask, proposal = layer_of(self.viewer, image, MASK), layer_of(self.viewer, image, PROPOSAL)
        last = (proposal if proposal is not None and mask_was_edited(mask) else mask).metadata.get(MODEL_VERSION)
        # a proposal painted on keeps its version while a newer prediction went to the probability map: going back to
        # the proposal's version counted the image as "segmented with it already", its map left from the other
        # version (clinician trial of session 43)
        probability = layer_of(self.viewer, image, PROBABILITY)
        shown = probability.metadata.get(MODEL_VERSION) if probability is not None else None
        return shown if shown and shown != last else last

    def resegment(self, announce: str = ""):
        """Segment again, with the model now in use, every open image whose mask a model of its line made (one
        sharing an ancestor with it: a round's parent, the version rolled back from, a sibling round), updating
        its layers in place (an edited mask is kept; the prediction goes to that image's one proposal layer).
        Masks of another line, or of unknown origin, are left alone: putting the skin model in use must not
        re-segment the open polyp frames. ``announce`` opens the status line (what changed)."""
        in_use, lines = self.models.version_id(), self.models.lines()  # read once: not per image
        # (the folder session's image is segmented again by the session itself, as the session shows it: both at once
        # raced, at two thresholds; cold review of session 38)
        masked = [x for x in self.viewer.layers if is_source_image(x) and layer_of(self.viewer, x, MASK) is not None
                  and not x.metadata.get(SESSION_IMAGE)]
        made_with = {id(x): layer_of(self.viewer, x, MASK).metadata.get(MODEL_VERSION) for x in masked}
        shown = {id(x): self._last_prediction_by(x) for x in masked}
        # an image whose last prediction is the model now in use's has nothing new to gain (an edited mask was given
        # a proposal of the very model that made it: trial of session 27); a model from a file has no version to tell
        current = {id(x) for x in masked if in_use and shown[id(x)] == in_use}
        layers = [x for x in masked if id(x) not in current and lines.related(made_with[id(x)], in_use)]
        left_alone = len(masked) - len(layers) - len(current)
        alone_note = "; ".join(note for note in (
            f"{left_alone} open image(s) left as they are (masks of another model, or of unknown origin)" if left_alone
            else "", f"{len(current)} open image(s) segmented with it already" if current else "") if note)
        if not layers:
            self.say("; ".join(x for x in (announce, alone_note) if x))
            return None
        self.say("; ".join(x for x in (announce, f"re-segmenting {len(layers)} open image(s)", alone_note) if x))
        # each image as it was segmented (its threshold, mode, tile size, flip TTA), not at the model's defaults
        jobs = [(layer, layer.data, bool(layer.rgb), bool(layers_of(self.viewer, layer, ATTENTION)),
                 settings_to_segment_again(self.viewer, layer)) for layer in layers]
        own = sum(1 for job in jobs if job[-1])
        checkpoint, device, models = self.models.checkpoint(), self.device.value, self.models

        def job():
            # each image's prediction yielded on its own: napari builds an image's layers in the GUI thread (0.3-0.4 s
            # each), and fourteen open images shown at once froze the window for 5.7 s (soak test of session 36). The
            # worker's "finished" comes after every image is shown (its signals arrive in order).
            predictor = models.predictor(checkpoint, device)
            for layer, data, rgb, att, settings in jobs:
                pixels = data[0] if layer.multiscale else data  # (np.asarray of a multiscale image is its smallest level)
                yield predictor, layer, data, predictor.predict(np.asarray(pixels), rgb=rgb, return_attention=att,
                                                                **settings)
            return len(jobs)

        counts = {"kept": 0, "updated": 0, "painted_proposals": 0, "changed": []}

        def show_one(item):
            predictor, layer, data, prediction = item
            active = self.viewer.layers.selection.active
            viewed = active if active is None or is_source_image(active) else image_for(self.viewer, active)
            # not when the layer shows another image now (the folder session reuses one layer per image)
            if layer in self.viewer.layers and layer.data is data:
                shown = show_prediction(self.viewer, layer, prediction, predictor.config.version,
                                        visible=same_layer(layer, viewed))
                if shown["replaced"] is not None:
                    # what the new model changed of a mask it replaces: the old one is gone from the screen, and
                    # nothing said how far the versions differ on the open images (clinician trial of session 43)
                    counts["changed"].append((layer.name, *shown["replaced"]))
                painted_mask_keeper(self.viewer).tie_like(shown["proposal"], shown["mask"])
                counts["kept"] += shown["kept_edited"] and not shown["painted_proposal_kept"]
                counts["painted_proposals"] += shown["painted_proposal_kept"]
                counts["updated"] += 1
            if active is not None and active in self.viewer.layers:
                # napari selects each layer added (a probability, a proposal): the clinician's mask, with its brush,
                # was left for a hidden probability map (trial of session 31)
                self.viewer.layers.selection.active = active

        def done(total):
            kept, updated, painted_proposals = counts["kept"], counts["updated"], counts["painted_proposals"]
            which = "each" if own == len(jobs) else f"{own} of them"
            at_own = (f", {which} at the threshold, mode and flip TTA it was segmented with (a setting left to the model "
                      "taken from the new one)" if own else "")
            self.resegmented += 1
            note = f"; {kept} edited mask(s) kept, new predictions in their proposal layers" if kept else ""
            if painted_proposals:
                note += (f"; {painted_proposals} proposal(s) you painted on kept as they are (their new predictions not "
                         "shown)")
            gone = total - updated
            if gone:
                note += f"; {gone} not shown (the image was closed or replaced meanwhile)"
            note += changed_note(counts["changed"])
            if alone_note:
                note += f"; {alone_note}"
            # what changed (the adoption's reason, "Roll back to undo") stays on the line: it was replaced within a second
            self.say("; ".join(x for x in (announce, f"re-segmented {updated} image(s) with {self.models.label()}{at_own}{note}")
                               if x))

        self.segment_worker = make_worker(job, _ignore_errors=True)
        self._segment_worker_done = False
        self.segment_worker.finished.connect(partial(self._on_segment_worker_done, self.segment_worker))
        self.segment_worker.yielded.connect(self.guarded(show_one))
        self.segment_worker.returned.connect(self.guarded(done))
        self.segment_worker.errored.connect(self.guarded(lambda err: self.report_error(err, "re-segmenting")))
        self.segment_worker.start()
        return self.segment_worker

    # ---- training ------------------------------------------------------------------------------------
    def retrain(self, _=None):
        if self.busy:
            return None
        corrections = self.correction_set
        if len(corrections) == 0:
            self.say("the correction set is empty: accept a corrected mask first")
            return None
        if self.store.current_checkpoint() is None:
            self.say("no model to fine-tune: no bundled weights are installed and the store is empty")
            return None
        ours, others = split_by_line(self.models, corrections)
        if not ours:
            self.say(f"The {len(others)} correction(s) in the set were made with {models_of(self.models, others)}, another "
                     f"model's line than the model in use, {self.models.label()}, which Retrain fine-tunes. To train "
                     "the model you corrected, choose it under 'versions' and press 'Use this version' first.")
            return None
        replay = None
        replay_dir = str(self.replay.value)
        if replay_dir not in ("", "."):
            try:
                replay = find_pairs(Path(replay_dir)).pairs
            except ValueError as err:
                self.say(f"replay folder: {err}")
                return None
        job = round_job(self.store, corrections, self._cancel, train_parts=self.train_parts.value,
                        epochs=int(self.epochs.value), replay=replay, device=self.device.value,
                        entry_ids={e.id for e in ours})
        self.plot.clear()
        self._round_note = trained_on(self.models, ours, others)  # said with the round's result
        leaving = f" ({left_out(self.models, others)}: another model's line)" if others else ""
        # when every correction trains (too few for a held-out part) there is none to score (trial of session 27)
        scoring = "; scoring the held-out ones..." if holds_out(len(ours)) else "..."
        return self.start_work(job, self._on_returned,
                               f"preparing a round on the {len(ours)} correction(s) in the set now{leaving} (corrections "
                               f"added or removed meanwhile count from the next round){scoring}",
                               on_event=self._on_event)

    def _on_event(self, event) -> None:
        if event.kind == "step":
            self.progress.max = max(event.epochs * event.steps_per_epoch, 1)
            self.progress.value = (event.epoch - 1) * event.steps_per_epoch + event.step
            self.plot.add(event.loss)
            self.say(f"epoch {event.epoch}/{event.epochs}, loss {event.loss:.3f}, ETA {fmt_eta(event.eta_s)}", reveal=False)
        elif event.kind == "scoring" and self.progress.value > 0:  # (after training: the last epoch's line stood still
            # for seconds; before it, the round's own line says what it trains on and that it scores first: kept, as
            # a first "scoring" replaced it at once: cold review of session 39)
            self.say(event.message, reveal=False)

    def _on_returned(self, outcome) -> None:
        if outcome is None:
            self.say("cancelled: the model in use and the correction set are unchanged")
            return
        config = outcome.config
        self.last_version = config.version
        self._round_shown = (describe_scores(outcome.result), config.version, False)
        self.scores.value = self._round_shown[0]
        self.reset_choices()
        trained = self._round_note
        if not outcome.adoption.adopt:  # only on evidence: 10+ held-out images show the new one worse
            self.versions.value = config.version
            self.say(f"{outcome.adoption.reason} ({trained})")
            return
        not_used = adopt(self.models, outcome)
        self._round_shown = (self._round_shown[0], config.version, not not_used)
        if not_used:
            self.versions.value = config.version
            self.say(f"{not_used} ({trained})")  # not "new version in use ...; not put in use"
            return
        # (the original-domain check is on the "last round" line too, with the held-out scores)
        self.resegment(f"{outcome.adoption.reason}: {self.models.label()} ('Roll back' to undo; "
                       f"{with_reference(trained, outcome.result)})")
