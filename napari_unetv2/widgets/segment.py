"""The Segment widget: pick an image layer and a model, press Segment, get probability, mask and
(when asked) attention maps.

The model runs in a napari thread worker; the GUI thread only gathers parameters and updates layers.
"""
from __future__ import annotations

import contextlib
import time
import weakref
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSlider, PushButton, SpinBox
from qtpy.QtCore import QTimer

from ..annotation.accept import NOT_FROM_A_MODEL
from ..checkpoints.lines import bundled_versions
from ..corrections.correction_set import image_hash, stored_when_by
from ..inference import PredictionCancelled
from ..inference.domain import describe_advice, domain_advice
from ..inference.predictor import check_image_shape, colour_note
from ..inference.settings import settings_of_prediction
from ._base import SecondPress, WorkerWidget, narrow_chooser
from ._kept_edits import IMAGE_KEY, accepted_as_it_is, painted_mask_keeper
from ._layers import (
    MASK,
    MASK_DISPLAYS,
    MODEL_VERSION,
    PROPOSAL,
    bring_to_front,
    converted_mask_note,
    file_name_of,
    image_for,
    image_id,
    is_source_image,
    layer_is_shown,
    layer_of,
    mask_display_of,
    raise_to_top,
    ready_to_paint,
    same_layer,
    set_mask_display,
    show_prediction,
    start_mask,
    start_proposal,
    unproxied,
)
from ._state import FROM_FILE, IN_USE, stored_corrections_of

MODEL_DEFAULT_MODE = "model default"
EMPTY_MASK_NOTE = " The model marked nothing in this image (its mask is empty): paint what it missed."
PAINTED_EMPTY_MASK_NOTE = " The model marked nothing in this image; its mask now holds what you painted."
CONFIRM_WITHIN_S = 60  # a second press confirms a warning only this soon after it (later, it is said again)


def model_chooser(widget: WorkerWidget) -> tuple[ComboBox, FileEdit]:
    """The model ComboBox (in use / bundled / any stored version / a file) and its file field."""
    combo = ComboBox(label="model", choices=lambda _=None: [*widget.models.choices(), (FROM_FILE, FROM_FILE)],
                     tooltip="Which model runs: the one in use (shared by all widgets), the bundled model, a "
                             "stored fine-tuned version, or a .safetensors file.")
    checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.safetensors", visible=False,
                          tooltip="A U-Net v2 checkpoint (.safetensors with its .json beside it).")

    def on_choice(value) -> None:
        checkpoint.visible = value == FROM_FILE
        widget.refresh_model_line()

    combo.changed.connect(on_choice)
    checkpoint.changed.connect(lambda _=None: widget.refresh_model_line())
    keep_choices_in_order(combo)
    narrow_chooser(combo)
    return combo, checkpoint


def keep_choices_in_order(combo: ComboBox) -> None:
    """Refreshed choices stay in the order given. magicgui keys a ComboBox's items by their text and adds a new text at
    the end: after a round renamed "in use: …", the chooser read bundled, bundled, from file, in use, … (trial of
    session 28). The items are laid out again, the chosen value kept: a layer chooser's value went to the first layer
    when the chosen one was renamed (the folder session renames its layers for each image: Segment and Correct &
    retrain went back to an image segmented before, hidden, and Accept brought it over the session's; verification of
    session 35)."""
    refill = combo.reset_choices

    def reset_in_order(*_args) -> None:
        value = combo.value
        items = [(combo.native.itemText(i), combo.native.itemData(i)) for i in range(combo.native.count())]
        with combo.changed.blocked():
            combo.native.clear()
            try:
                refill()
            except Exception:  # (a store folder gone meanwhile): the chooser keeps what it offered, not nothing
                combo.native.clear()
                for text, data in items:
                    combo.native.addItem(text, data)
                combo.native.setCurrentIndex(next((i for i, (_text, data) in enumerate(items) if data == value), 0))
                raise
            if value in combo.choices:
                combo.value = value
        if combo.value != value:
            combo.changed.emit(combo.value)

    combo.reset_choices = reset_in_order


def chosen_model(widget, combo: ComboBox, checkpoint: FileEdit):
    """The choice to hand to ModelInUse: IN_USE, BUNDLED, a version, or the file's Path."""
    return Path(checkpoint.value) if combo.value == FROM_FILE else combo.value


def follow_fine_tuned(widget, combo: ComboBox) -> bool:
    """When the model in use was just fine-tuned from the model this chooser names (the clinician segmented with
    the bundled skin model, put it in use as Retrain advised, and a round improved it), run the model in use
    from now on: otherwise the retraining would change nothing in what this widget shows. Returns whether it said
    something."""
    if widget.models.derived_from(combo.value):
        combo.value = IN_USE
        widget.say(f"now runs {widget.models.label()}, fine-tuned from the model chosen before")
        return True
    if combo.value != IN_USE and widget.models.version_id(combo.value) != widget.models.version_id():
        # a round put a model in use that this widget does not run: its next press ran the file or version chosen
        # here and replaced the new model's proposal, which was easy to miss (trial of session 28)
        widget.say(f"{widget.models.label()} is now in use; this widget still runs the model chosen here "
                   "(choose 'in use' to segment with the new one)")
        return True
    return False


def stored_already(entry) -> str:
    return (f"a correction of this image is stored already ({entry.source}, {entry.pixels_changed} pixels changed, "
            f"{stored_when_by(entry)}: in Correct & retrain's list)")


def follow_active_image(widget, chooser: ComboBox) -> None:
    """Keep an image chooser on the image being worked on: the active layer, or the image it belongs to."""

    def on_active(event=None) -> None:
        layer = widget.viewer.layers.selection.active
        if layer is None:
            return
        image = layer if is_source_image(layer) else image_for(widget.viewer, layer)
        if image is not None and image in chooser.choices:
            chooser.value = image

    widget.viewer.layers.selection.events.active.connect(on_active)
    widget.viewer.layers.events.inserted.connect(widget.reset_choices)
    widget.viewer.layers.events.removed.connect(widget.reset_choices)
    on_active()


HIDDEN_NOTE = " (hidden: tick its eye in the layer list to see it)"
HIDDEN_IMAGE_SENTENCE = " The image is hidden: tick its eye in the layer list to see it."  # (a run's line: taken back
# when the image is shown, as the notes are; it stayed over an image on screen: verification of session 39)
COVERED_NOTE = " (not on screen: an image above it covers it)"


class SegmentWidget(WorkerWidget):
    def __init__(self, napari_viewer, store_dir=None):
        super().__init__(napari_viewer, store_dir)
        self.image = ComboBox(label="image", choices=self._image_layers,
                              tooltip="The image to segment; follows the layer you select in the layer list.")
        narrow_chooser(self.image)
        keep_choices_in_order(self.image)  # (a layer renamed: the folder session's next image; see there)
        self.model_source, self.checkpoint = model_chooser(self)
        self.threshold = FloatSlider(label="threshold", min=0.05, max=0.95, step=0.05, value=0.5,
                                     tooltip="Probability at or above which a pixel is lesion.")
        self.mode = ComboBox(label="mode", choices=[MODEL_DEFAULT_MODE, "resize", "tile"], value=MODEL_DEFAULT_MODE,
                             tooltip="resize: the whole frame at the size the model was trained at (fast; the bundled "
                                     "models' mode). tile: native resolution in overlapping windows, for models trained "
                                     "on tiles at native resolution (a model trained on resized frames sees lesions at "
                                     "another scale there).")
        self.tile_size = SpinBox(label="tile size", min=64, max=4096, step=32, value=512,
                                 tooltip="Window side in pixels for tile mode.")
        self.tta = CheckBox(text="flip test-time augmentation", value=False,
                            tooltip="Average the prediction over horizontal and vertical flips (3x slower).")
        self.attention = CheckBox(text="compute SDI attention maps", value=False,
                                  tooltip="Also compute the four spatial attention maps (slower; added as hidden layers "
                                          "with their own contrast).")
        self.display = ComboBox(label="mask display", choices=list(MASK_DISPLAYS), value="filled",
                                tooltip="filled: translucent mask; outline: only its border, the tissue stays visible.")
        self.run_button = PushButton(text="Segment", tooltip="Segment the chosen image in the background.")
        self._start_buttons = [self.run_button]
        self.extend([self.image, self.model_source, self.checkpoint, self.threshold, self.mode, self.tile_size,
                     self.tta, self.attention, self.display, self.run_button])
        self.add_common()
        self.run_button.changed.connect(self.run)
        self.display.changed.connect(self._on_display)
        # Deferred to the next turn of the event loop: whoever adds an image usually adds its mask right after
        # (the Batch widget opening results), and the status must see both.
        self.image.changed.connect(lambda image: QTimer.singleShot(0, self.guarded(lambda: self._on_image_chosen(image))))
        follow_active_image(self, self.image)
        self.model_source.changed.connect(self.guarded(self._on_model_choice))
        self.last_result: dict = {}
        # the image the status speaks of (weakly: a closed image is not kept for it): a result for another must not
        # be overwritten
        self._status_image = None
        # (mask layer, version, image name) while the status says which version made that mask
        self._status_about = None
        self._watched = weakref.WeakSet()  # mask layers whose pixel replacements this widget listens to
        self._other_line = SecondPress(CONFIRM_WITHIN_S)  # warned of (image, model): Segment again goes ahead
        self._advised = {}  # {image id: the bundled model a result's hint advised for it}: chosen, it asks nothing
        self._empty_note_watch = None  # (mask, slot) listening for the first stroke on an empty result's mask
        self._closed_while_segmenting = None  # the name of the image closed during its run (see _stop_when_closed)
        self._recheck_pending = False
        self._layers_events = (self.viewer.layers.events, self.guarded(self._on_layers_event))
        self._layers_events[0].connect(self._layers_events[1])

    def _image_layers(self, _=None) -> list:
        return [layer for layer in self.viewer.layers if is_source_image(layer)]

    def model_choice(self):
        return chosen_model(self, self.model_source, self.checkpoint)

    def _on_model_changed(self) -> None:
        super()._on_model_changed()
        if self.closed:
            return
        if not follow_fine_tuned(self, self.model_source) and self.model_source.value == IN_USE:
            # the status of a run with the model before (its domain hint: "the bundled polyp model that segmented it:
            # choose the bundled skin model", after a round had put a fine-tuned one in use: trial of session 36) gives
            # way to what the chosen image's mask is now
            self._status_image = None
            self._on_image_chosen(self.image.value)

    def _on_image_chosen(self, image=None) -> None:
        """The status speaks of the chosen image, not of the last run on another one ("done in 0.1 s")."""
        if self.busy or image is None or image is not self.image.value or image not in self.viewer.layers:
            return
        if self._status_image is not None and image is self._status_image():  # the chooser re-set to the same image
            return  # (layers added, choices reset)
        self._status_image = weakref.ref(image)
        mask = layer_of(self.viewer, image, MASK)
        if mask is not None:  # the control beside the chosen image's mask says how that mask is drawn (it said "outline"
            # over a filled mask, set for the image chosen before: trial of session 36); not applied again, which
            # would reset an opacity set in napari's layer controls
            with self.display.changed.blocked():
                self.display.value = mask_display_of(mask)
        self.progress.value = 0
        if mask is None:
            self.say(f"{image.name}: not segmented yet{self._hidden_note(image)}{converted_mask_note(self.viewer, image)}",
                     about=image)
        else:
            self._say_version(image, mask)

    def _hidden_note(self, image) -> str:
        """Said of a chosen image the canvas does not show: the widgets follow the layer selected, napari draws the
        visible ones (trial of session 35: a hidden image chosen, another on screen, taken for it)."""
        if not image.visible:
            return HIDDEN_NOTE
        return "" if layer_is_shown(self.viewer, image) else COVERED_NOTE

    def _on_destroyed(self, _=None) -> None:
        super()._on_destroyed()
        with contextlib.suppress(Exception):  # (every layer's events pass there: not held after the dock closes)
            self._layers_events[0].disconnect(self._layers_events[1])

    def _on_layers_event(self, event) -> None:
        if getattr(event, "type", "") in ("visible", "moved", "removed", "inserted") and not self._recheck_pending:
            self._recheck_pending = True  # (one look after a burst: the layer list re-emits every layer's events)
            QTimer.singleShot(0, self.guarded(self._recheck_hidden_note))

    def _recheck_hidden_note(self) -> None:
        """The status's note that the chosen image is hidden or covered, said again when that changes: another dock (the
        clicks' Start, Accept) brought the image into view and the status went on saying "not on screen" over it
        (clinician trial of session 38); an image opened over it, or its eye unticked, and the status went on as if it
        were on screen (stop 38's list)."""
        self._recheck_pending = False
        image = self.image.value
        said_of = self._status_image() if self._status_image is not None else None
        if self.busy or image is None or image not in self.viewer.layers or not same_layer(said_of, image):
            return
        said, now = self.status.value.replace("\u200b", ""), self._hidden_note(image)
        text = said.replace(HIDDEN_IMAGE_SENTENCE, "") if image.visible else said
        for note in (HIDDEN_NOTE, COVERED_NOTE):
            if note in text and note != now:
                text = text.replace(note, now)
                break
        else:
            if now and now not in text:  # hidden or covered since it was said (another image opened over it): said too
                text = text.rstrip() + now
        if text != said:
            self.say(text, reveal=False, about=image)

    def _say_version(self, image, mask) -> None:
        version = mask.metadata.get(MODEL_VERSION) or "?"
        made = (f"its mask is {NOT_FROM_A_MODEL[version]} in a folder session (no model made it); Segment runs the model "
                "on it (an edited mask is kept)" if version in NOT_FROM_A_MODEL else
                f"segmented with version {version}; Segment again to update it (an edited mask is kept)")
        proposal = layer_of(self.viewer, image, PROPOSAL)
        # the outline over an edited mask is another version's prediction: the status named only the mask's (clinician
        # trial of session 43)
        if proposal is not None:
            by = proposal.metadata.get(MODEL_VERSION)
            made += (f"; its proposal '{proposal.name}' (the outline) was made with "
                     f"{self.models.label(by) if by else 'a model not recorded'}")
        self.say(f"{image.name}: {made}{self._hidden_note(image)}{self._stored_note(mask)}", about=image)
        self._status_about = (mask, version, image.name)
        if mask not in self._watched:
            # Correct & retrain re-segments open images after a round or a roll back: the status must not go on
            # naming the version the mask had before (the data event fires on replaced pixels, not on brush strokes)
            self._watched.add(mask)
            mask.events.data.connect(self.guarded(lambda _event, mask=mask: self._on_mask_replaced(mask)))

    def _stored_note(self, mask) -> str:
        """A correction of the mask's image stored by any widget, unless this mask is what was accepted: chosen again,
        a mask made before a folder session's correction of its image said only its version, and was accepted over the
        correction (trial of session 35). From the set as last read (a worker that stored reads it again)."""
        stored = stored_corrections_of(self.models.corrections_dir, mask.metadata.get(IMAGE_KEY), cached_only=True)
        if not stored or accepted_as_it_is(mask):
            return ""
        return f"; {stored_already(stored[-1])}; Accept of this mask asks before it replaces that"

    def _on_mask_replaced(self, mask) -> None:
        about = self._status_about
        image = self.image.value
        if self.busy or about is None or about[0] is not mask or image is None or layer_of(self.viewer, image, MASK) is not mask:
            return
        # another version, or another image in the same layers (a folder session's next image: the status went on
        # naming the image it first showed, trial of session 41)
        if ((mask.metadata.get(MODEL_VERSION) or "?"), image.name) != about[1:]:
            self._say_version(image, mask)

    def _on_model_choice(self, _=None) -> None:
        """Another model chosen: a warning about the one chosen before no longer stands (nor its second press)."""
        self._other_line.forget()
        self._status_image = None
        self._on_image_chosen(self.image.value)

    def _on_display(self, value: str) -> None:
        """On the chosen image's mask (not only the one segmented last), as the control sits beside it."""
        image = self.image.value
        mask = layer_of(self.viewer, image, MASK) if image is not None else None
        if mask is None and self.last_result.get("mask") in self.viewer.layers:
            mask = self.last_result["mask"]
        if mask is not None:
            set_mask_display(mask, value)

    def run(self, _=None):
        """Start a prediction worker; returns it (tests wait on it). Refusals go to the status line."""
        if self.busy:
            return None
        self._status_about = None  # what the status says from here on is this run's
        layer = self.image.value
        if layer is None:
            self.say("choose an image layer first")
            return None
        choice = self.model_choice()
        if isinstance(choice, Path) and not choice.is_file():
            self.say(f"checkpoint not found: {choice}")
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        try:
            check_image_shape(tuple(data.shape), bool(layer.rgb))
        except ValueError as err:  # answered at once, in the GUI thread: nothing starts, nothing is added
            self.report_error(err)
            return None
        if not self._confirmed_other_line(layer, choice):
            return None
        params = dict(threshold=float(self.threshold.value),
                      mode=None if self.mode.value == MODEL_DEFAULT_MODE else self.mode.value,
                      tile_size=int(self.tile_size.value), tta=bool(self.tta.value),
                      return_attention=bool(self.attention.value), rgb=bool(layer.rgb))
        device, models, signals, stop_asked = self.device.value, self.models, self._signals, self.stop_asked
        array = np.asarray(data)
        rgb = bool(layer.rgb)
        kept_edits = painted_mask_keeper(self.viewer).store  # (read in the worker: it holds only its folder)
        corrections_dir = self.models.corrections_dir

        def job():
            start = time.time()
            try:
                checkpoint = models.checkpoint(choice)
                predictor = models.predictor(checkpoint, device)
                mode = params["mode"] or predictor.config.inference_mode
                unit = "tile" if mode == "tile" else "slice"
                signals.advanced.emit(1, 3, "model loaded; segmenting...")

                def progress(done: int, total: int) -> None:  # steps: model loaded, each slice/tile, layers shown
                    signals.advanced.emit(1 + done, total + 2, f"segmenting: {unit} {done}/{total}" if total > 1 else "")

                # Cancel, or napari quitting (it asks the worker and waits: a large image went on to its last tile)
                prediction = predictor.predict(array, should_stop=stop_asked, progress=progress, **params)
                # said with the result; read here, not in the GUI thread (a pass over a large image's alpha)
                prediction.colour_note = colour_note(array, rgb)
                advice = domain_advice(array, rgb, predictor.config.version, checkpoint)
                prediction.domain_note = describe_advice(advice, "choose {model} under 'model'", predictor.config.version)
                prediction.advised_model = advice[1].name if advice is not None else None
                # edits painted on this image and kept when napari closed (or crashed), never accepted: given back
                prediction.image_key = image_hash(array)
                prediction.kept_edit = kept_edits.find(prediction.image_key, prediction.mask.shape)
                prediction.kept_proposal = kept_edits.find(prediction.image_key, prediction.mask.shape, "proposal")
                prediction.stored = stored_corrections_of(corrections_dir, prediction.image_key)
                # kept before a correction of the image was stored where this napari did not see it (another napari, a
                # script): the correction is the later work, as in a folder session (trial of session 34)
                prediction.kept_older = [kept for kept in (prediction.kept_edit, prediction.kept_proposal) if kept
                                         and prediction.stored and not kept.newer_than(prediction.stored[-1].created)]
                if prediction.kept_older:
                    prediction.kept_edit = prediction.kept_proposal = None
            except PredictionCancelled:
                return None  # a normal ending, not an error
            except (ValueError, RuntimeError, OSError) as err:  # bad input, out of memory, unreadable file
                return err
            return predictor, prediction, time.time() - start

        segmented = layer.data
        self._closed_while_segmenting = None
        worker = self.start_work(job, lambda result: self._on_done(layer, segmented, result), "loading model...",
                                 steps=3)
        self._stop_when_closed(layer, worker)
        return worker

    def _stop_when_closed(self, layer, worker) -> None:
        """The image closed while it is segmented: the work stops at the next slice or tile. It went on ("segmenting: tile
        4/9" for an image no longer open, Segment greyed out) until the end, more than a minute on a large image
        (clinician trial of session 38)."""
        image = weakref.ref(unproxied(layer))
        layers = self.viewer.layers

        def on_removed(event) -> None:
            if unproxied(event.value) is image() and self.worker is worker:
                self._closed_while_segmenting = event.value.name
                self._cancel.set()
                self.say(f"'{event.value.name}' was closed: stopping its segmentation...")

        slot = self.guarded(on_removed)
        layers.events.removed.connect(slot)

        def forget() -> None:
            with contextlib.suppress(Exception):  # (the viewer may be gone)
                layers.events.removed.disconnect(slot)

        worker.finished.connect(forget)

    def _forget_empty_note_once_painted(self, image, mask) -> None:
        """"The model marked nothing ... (its mask is empty)" stays true only until the first brush stroke: then the
        status says the mask holds what was painted (it went on saying "empty" over a painted mask: trial of
        session 36)."""
        image_ref = weakref.ref(unproxied(image))
        self._drop_empty_note_watch()  # one at a time: the last empty result's

        def on_paint(_event=None) -> None:
            self._drop_empty_note_watch()
            said = self.status.value.replace("\u200b", "")  # (say() breaks paths again)
            status_image = self._status_layer() if self._status_layer is not None else None
            if status_image is None or status_image is not image_ref() or EMPTY_MASK_NOTE not in said:
                return  # the status speaks of something else by now
            self.say(said.replace(EMPTY_MASK_NOTE, PAINTED_EMPTY_MASK_NOTE), reveal=False, about=image_ref())

        slot = self.guarded(on_paint)
        mask.events.paint.connect(slot)
        self._empty_note_watch = (weakref.ref(unproxied(mask)), slot)

    def _drop_empty_note_watch(self) -> None:
        watch, self._empty_note_watch = self._empty_note_watch, None
        mask = watch[0]() if watch is not None else None
        if mask is not None:
            with contextlib.suppress(Exception):
                mask.events.paint.disconnect(watch[1])

    def _confirmed_other_line(self, layer, choice) -> bool:
        """An image whose mask a model of one line made (the polyp model), segmented again with a model of another (the
        skin model left chosen from the image before): said, and done on a second press. Without it, one click
        replaced a good unedited polyp mask by the skin model's (83% of the frame) and only said 'done'."""
        mask = layer_of(self.viewer, layer, MASK)
        made_with = mask.metadata.get(MODEL_VERSION) if mask is not None else None
        runs = self.models.version_id(choice)
        if not runs or not self.models.lines().of_another_line(made_with, runs):
            return True
        if self._other_line.confirmed((image_id(layer), runs)):
            return True
        advised = self._advised.get(image_id(layer))
        if advised is not None and bundled_versions().get(runs) == advised:
            return True  # the model this widget's own hint advised for the image (trial of session 36: the advice
            # followed, then a question about it)
        self.say(f"{layer.name} was segmented with {self.models.label(made_with)}; the model chosen here is "
                 f"{self.models.label(choice)}, of another line (another kind of image?). Press Segment again to "
                 "segment it with that one anyway (an edited mask is kept), or choose the model above.")
        return False

    def _on_done(self, layer, segmented, result) -> None:
        if result is None:
            self.progress.value = 0
            closed = self._closed_while_segmenting
            self.say(f"'{closed}' was closed: its segmentation stopped, nothing was added" if closed else
                     "cancelled: nothing was added")
            return
        predictor, prediction, seconds = result
        if layer not in self.viewer.layers:
            self.say("the image layer was removed; nothing added")
            return
        if layer.data is not segmented:  # e.g. the folder session moved its one image layer to the next image
            self.progress.value = 0
            self.say(f"'{layer.name}' shows another image now; this result was for the one before and is not shown")
            return
        if getattr(prediction, "advised_model", None) is not None:
            self._advised[image_id(layer)] = prediction.advised_model
        # The user may have gone on to another image while this one was segmented: then the result is added without
        # taking them back (no selection, the image they are on stays on top, above the new mask).
        # read before the layers are added: napari makes a new layer the active one, and the chooser follows it
        here, active = self.image.value, self.viewer.layers.selection.active
        still_here = same_layer(here, layer)
        shown_from = time.time()
        kept_edit = prediction.kept_edit if layer_of(self.viewer, layer, MASK) is None else None
        if kept_edit is not None:  # the edits first, as the image's (edited) mask: the model's new mask is its proposal
            started, version = kept_edit.painted_from(prediction.mask, predictor.config.version)
            start_mask(self.viewer, layer, kept_edit.mask, started, version, self.display.value,
                       settings=kept_edit.painted_with(settings_of_prediction(prediction)))
        kept_proposal = prediction.kept_proposal if layer_of(self.viewer, layer, PROPOSAL) is None else None
        restored_proposal = None
        if kept_proposal is not None:  # a proposal painted on: given back as it was (Segment keeps it as it is)
            restored_proposal = start_proposal(self.viewer, layer, kept_proposal.mask,
                                               *kept_proposal.painted_from(prediction.mask, predictor.config.version),
                                               kept_proposal.painted_with(settings_of_prediction(prediction)))
        self.last_result = show_prediction(self.viewer, layer, prediction, predictor.config.version,
                                           display=self.display.value)
        keeper, file_name = painted_mask_keeper(self.viewer), file_name_of(layer)
        keeper.tie(self.last_result["mask"], prediction.image_key, layer.name, restored=kept_edit is not None,
                   image_file=file_name)
        if restored_proposal is not None:
            keeper.tie(restored_proposal, prediction.image_key, layer.name, restored=True, image_file=file_name)
        elif self.last_result["proposal"] is not None:  # painted on, it holds the user's work too
            keeper.tie(self.last_result["proposal"], prediction.image_key, layer.name, image_file=file_name)
        # napari builds each new layer's view in this thread (0.4-1.6 s for 2-14 layers on a slow machine): counted in
        # what the status says, or "done in 0.1 s" hid a second of a frozen window (trial of session 27)
        showing = time.time() - shown_from
        self.progress.value = self.progress.max
        shown_again = False
        if still_here:
            if layer.visible:
                bring_to_front(self.viewer, layer)
                # the mask made ready to paint is shown, as a mask selected to edit is (follow_removed_images): one the
                # user had hid came back when painted, stayed hidden when not, under "Paint to correct the mask" and a
                # greyed-out brush (trial and verification of session 38)
                shown_again = not self.last_result["mask"].visible
                self.last_result["mask"].visible = True
            ready_to_paint(self.viewer, self.last_result["mask"])
        else:
            if not layer_is_shown(self.viewer, layer) and here is not None and here in self.viewer.layers and here.visible:
                raise_to_top(self.viewer, here)  # the image the user is on stays above the new mask
            if active in self.viewer.layers:  # napari makes a layer just added the active one: the user's stays
                self.viewer.layers.selection.active = active
        if kept_edit is not None:
            painted_over = self.last_result["mask"].metadata.get(MODEL_VERSION)
            other_model = (f", painted over the mask of {self.models.label(painted_over)}"
                           if painted_over and painted_over not in ("?", predictor.config.version) else "")
            proposal = self.last_result["proposal"]
            if restored_proposal is not None:
                beside = (f"and the proposal you painted on ('{restored_proposal.name}') is back as you left it, so the "
                          "new prediction is not shown")
            elif proposal is not None:
                beside = f"the model's new mask is in '{proposal.name}' (delete the mask layer to start from the model's)"
            else:
                beside = "the model's new mask is the same"
            # (a clip's frames are accepted one by one, each stored on its own: its kept mask is never "accepted")
            accepted = "not accepted as a whole" if kept_edit.mask.ndim == 3 else "never accepted"
            kept = (f"; the edits you painted on this image before (kept {kept_edit.kept_at}, {accepted}{other_model}) "
                    f"are its mask again, {beside}")
        elif restored_proposal is not None:
            kept = (f"; the proposal you painted on before (kept {kept_proposal.kept_at}) is back as you left it in "
                    f"'{restored_proposal.name}'")
        elif self.last_result["painted_proposal_kept"]:
            kept = (f"; your edited mask and the proposal you painted on ('{self.last_result['proposal'].name}') were "
                    "kept as they are, so the new prediction is not shown (accept or delete the painted proposal to see "
                    "it)")
        elif self.last_result["kept_edited"]:
            proposal = self.last_result["proposal"]  # (one the user hid stays hidden: said, it was looked for)
            hidden = "" if proposal.visible else " (hidden: tick its eye to compare)"
            kept = f"; your edited mask was kept, the new prediction is in '{proposal.name}'{hidden}"
        else:
            kept = ""
        if prediction.stored:
            model_shown = "" if self.last_result["kept_edited"] else ", the mask shown is the model's"
            kept += f"; {stored_already(prediction.stored[-1])}{model_shown}"
        if prediction.kept_older:
            kept += (f"; edits you painted on it earlier (kept {prediction.kept_older[0].kept_at}) are older than that "
                     "correction and not shown (`unetv2 kept-edits export` saves them)")
        untrained = " UNTRAINED MODEL: outputs are meaningless." if predictor.is_untrained else ""
        scale_note = " ".join(note for note in (predictor.mode_note(prediction.mode), prediction.colour_note,
                                                getattr(prediction, "domain_note", "")) if note)
        scale_note = f" {scale_note}" if scale_note else ""
        # its re-emitted choice (layers were added) keeps this message
        self._status_image = weakref.ref(self.image.value) if self.image.value is not None else None
        where = "" if still_here else f"{layer.name}: "
        took = (f"{seconds + showing:.1f} s ({seconds:.1f} s segmenting, {showing:.1f} s adding the layers)"
                if showing >= 0.2 else f"{seconds:.1f} s")
        # an empty mask said as such: "done ... Paint to correct" over an image with nothing marked read as "nothing
        # happened" (trial of session 36: 3 of 8 PolypGen frames)
        shows_models = kept_edit is None and not self.last_result["kept_edited"]  # (else the user's edits are shown)
        if np.any(prediction.mask):
            paint = " Paint to correct the mask."
        elif shows_models:
            paint = EMPTY_MASK_NOTE
            self._forget_empty_note_once_painted(layer, self.last_result["mask"])
        else:
            paint = " The model marked nothing in this image this time (its new mask is empty)."
        if still_here and not layer.visible:
            paint += HIDDEN_IMAGE_SENTENCE
        elif shown_again:
            paint += " Its mask, hidden before, is shown again to paint on."
        self.say(f"{where}done in {took}{kept}.{paint}{untrained}{scale_note}", about=layer)
