"""What every widget that runs work in the background shares: the device choice, the model line, a
progress signal, busy / cancel / finished handling and one error path (a one-line status message in
the widget, never a traceback toast)."""
from __future__ import annotations

import atexit
import inspect
import threading
import time
import weakref
from typing import Callable, Optional

from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal

from .. import errors
from ..devices import available_devices
from ._kept_edits import painted_mask_keeper
from ._layers import deleted_masks, follow_removed_images, is_source_image, ready_to_paint, same_layer, unproxied
from ._state import IN_USE, ModelInUse, model_in_use
from ._workers import make_worker, once

DEVICE_TIP = "Where the model runs: auto = CUDA GPU, then Apple MPS, then CPU."


class _Progress(QObject):
    """Carries progress from a worker thread to the GUI thread (a queued signal): done, total, text."""

    advanced = Signal(int, int, str)


def wrapping_label(label: str, value: str = "", tooltip: str = "") -> Label:
    """A status line that wraps (long messages must not widen the dock and squeeze the canvas), never drawn shorter
    than its wrapped text (see :class:`_WholeText`)."""
    widget = Label(label=label, value=value, tooltip=tooltip)
    from qtpy.QtWidgets import QSizePolicy

    widget.native.setWordWrap(True)
    widget.native.setMinimumWidth(50)
    # Expanding: take the row's width (a wrapping label otherwise settles on a narrow column).
    widget.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    whole = _WholeText(widget.native)
    widget.changed.connect(lambda *_: whole.fit())
    return widget


class _WholeText(QObject):
    """Keeps a wrapping label's least height at what its text needs at its width. Qt's layouts take a wrapping label's
    minimum as one line: a dock squeezed by the docks beside it drew the clicks dock's help text over its status line
    (clinician trial of session 38). A dock that is too short now scrolls instead."""

    def __init__(self, label):
        super().__init__(label)  # (lives as long as the label)
        self._label = label
        label.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    def fit(self) -> None:
        width = self._label.width()
        need = self._label.heightForWidth(width) if width > 0 else -1
        if need > 0 and self._label.minimumHeight() != need:
            self._label.setMinimumHeight(need)


NARROW_CHOOSER_CHARS = 24


def narrow_chooser(combo, chars: int = NARROW_CHOOSER_CHARS):
    """A chooser whose long items do not widen the dock: the *versions* list, each item with its prospective score,
    made *Correct & retrain* 875 px wide and left the image a third of the window (trial of session 30). The box
    shows about ``chars`` characters (the rest elided), its open list is as wide as its longest item, and its tooltip
    ends with the whole current choice. Returns ``combo``."""
    from qtpy.QtWidgets import QComboBox

    box = combo.native
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(chars)
    about = combo.tooltip or ""

    def follow(*_) -> None:
        view = box.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + view.verticalScrollBar().sizeHint().width())
        text = box.currentText()
        box.setToolTip(f"{about}\n\nNow: {text}" if about and text else about or text)

    box.currentTextChanged.connect(follow)
    box.model().rowsInserted.connect(follow)
    box.model().rowsRemoved.connect(follow)
    box.model().dataChanged.connect(follow)
    follow()
    return combo


def breakable(text: str) -> str:
    """Let Qt wrap long paths and ids: a zero-width space after each separator."""
    for separator in ("/", "\\", "-", "_"):
        text = text.replace(separator, separator + "\u200b")
    return text


def one_line(err: BaseException) -> str:
    """An error as one line a person can act on (no traceback, no command-line wording)."""
    # (a status line wraps: a refusal that names files and what to do is read whole, not cut at one_line's 300)
    return (errors.one_line(err, limit=1200).replace("pass --continue", "tick 'continue'")
            .replace("--continue carries on", "'continue' carries on"))


def when_alive(slot: Callable, on_deleted: Optional[Callable] = None) -> Callable:
    """``slot`` for a worker's signal, doing nothing when its widget's Qt objects were deleted meanwhile (napari
    closed): a result arriving then would raise in the slot, and an exception in a slot aborts the process under
    PyQt (a crash on closing napari during a retrain round, trial of session 24)."""
    def call(*args):
        try:
            return slot(*args)
        except RuntimeError as err:
            if "has been deleted" not in str(err):
                raise
            if on_deleted is not None:
                on_deleted()
            return None
    return call


_LIVE_WIDGETS: "weakref.WeakSet[WorkerWidget]" = weakref.WeakSet()
MIN_DOCK_HEIGHT = 320  # px: a dock shows at least this much of its controls (it scrolls for the rest) ...
LOWEST_DOCK_FLOOR = 120  # px: ... unless the viewer's docks would not fit on the screen: never less than this
WINDOW_CHROME = 140  # px: napari's menu bar, status bar and window frame, around the docks
DOCK_TITLE = 28  # px: a dock's title bar


def named_few(names: list) -> str:
    """The first three names, and how many more."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _docked_in(viewer, widgets) -> list:
    """Those of ``widgets`` docked in ``viewer`` (napari's removal of a dock only takes its widget out)."""
    here = unproxied(viewer)
    return [w for w in list(widgets) if unproxied(w.viewer) is here and w.native.parentWidget() is not None]


def _docks_of(viewer) -> list:
    """The viewer's :class:`WorkerWidget` docks."""
    return _docked_in(viewer, [w for w in list(_LIVE_WIDGETS) if not w.closed])  # (a closed one's Qt widget is gone)


_OTHER_DOCKS: "weakref.WeakSet" = weakref.WeakSet()  # the plugin's docks that are no WorkerWidget (clicks)


def floor_docks_later(widget) -> None:
    """Count ``widget``, a plugin dock that is no :class:`WorkerWidget` (the clicks dock), among its viewer's docks
    while it lives, and share the screen's height among them again once it is docked."""
    viewer = widget.viewer

    def floor() -> None:
        docks = _docks_of(viewer)
        if docks:
            docks[0].guarded(docks[0]._floor_docks)()

    def closed(*_) -> None:
        _OTHER_DOCKS.discard(widget)
        QTimer.singleShot(0, floor)  # the docks left get their room back

    _OTHER_DOCKS.add(widget)
    widget.native.destroyed.connect(closed)
    QTimer.singleShot(0, floor)


def dock_floor(docks: int, screen_height: int) -> int:
    """The least height of each of ``docks`` plugin docks in one viewer: :data:`MIN_DOCK_HEIGHT`, lower when that many
    would not fit on a screen ``screen_height`` tall. Five docks of 320 px made napari's window 1,644 px tall on a
    1,200 px screen, its lowest buttons (Accept & next) off the screen (trial of session 35)."""
    share = (screen_height - WINDOW_CHROME) // max(docks, 1) - DOCK_TITLE
    return max(LOWEST_DOCK_FLOOR, min(MIN_DOCK_HEIGHT, share))


EXIT_WAIT_MS = 60_000


def _stop_work_at_exit() -> None:
    """At interpreter exit (a script that closed its viewer and ends, napari quitting), ask every widget's work
    to stop and wait for the worker threads, while their Qt objects still exist: a round still training when
    Python tears Qt down would emit into deleted signals, which aborts the process and leaves its scratch folder."""
    if not _LIVE_WIDGETS:
        return
    from qtpy.QtCore import QThreadPool

    for widget in list(_LIVE_WIDGETS):
        widget._cancel.set()
    # every worker thread: rounds, and the short ones (re-segmenting, the session's look-ahead, a click box)
    QThreadPool.globalInstance().waitForDone(EXIT_WAIT_MS)


atexit.register(_stop_work_at_exit)


class SecondPress:
    """A warning that the same action, pressed again soon after, goes past: the first press says what it would
    do, a second one on the same thing within ``within_s`` does it (later, the warning is given again)."""

    def __init__(self, within_s: float):
        self.within_s = within_s
        self.forget()

    def confirmed(self, what) -> bool:
        """True for a second press on ``what`` in time (and the next one asks again); else False, remembered."""
        if self._what == what and time.monotonic() - self._at < self.within_s:
            self.forget()
            return True
        self._what, self._at = what, time.monotonic()
        return False

    def forget(self) -> None:
        self._what, self._at = None, float("-inf")


class _Failure:
    """An error a job returned, carried past superqt: a worker returning a RuntimeError (a CUDA out of memory) is
    taken for an aborted thread, with a warning and no signal at all, so the widget stayed busy for good."""

    def __init__(self, error: BaseException):
        self.error = error

    @staticmethod
    def wrap(result):
        return _Failure(result) if isinstance(result, BaseException) else result


class WorkerWidget(Container):
    """Base of the plugin's widgets. Subclasses build their controls, then call :meth:`add_common`."""

    def __init__(self, napari_viewer, store_dir=None):
        # In a scroll area: two docks sharing a column squeezed the controls below their height and clipped the status
        # line mid-sentence (the instruction at its end was lost); now the dock scrolls instead. See ``native``.
        super().__init__(labels=True, scrollable=True)
        self.viewer = napari_viewer
        self.models: ModelInUse = model_in_use(store_dir)
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto", tooltip=DEVICE_TIP)
        self.cancel_button = PushButton(text="Cancel", enabled=False,
                                        tooltip="Stop the running work; nothing half-done is kept.")
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0, tooltip="Progress of the running work.")
        # "runs", not "model": the Segment and Batch widgets have a "model" chooser just above it
        self.model_line = wrapping_label("runs", tooltip="The model this widget runs (name and version).")
        self.status = wrapping_label("status", tooltip="What happened last, or why nothing happened.")
        self._status_layer = None  # the image layer the status speaks of (``say(..., about=)``); see status_layer
        self.cancel_button.changed.connect(self.cancel)
        self._signals = _Progress()
        self._signals.advanced.connect(self.guarded(self._on_progress))
        self._cancel = threading.Event()
        self.worker = None
        self._start_buttons: list = []
        self.models.changed.connect(self._on_model_changed)
        self.models.scores_changed.connect(self.guarded(self.refresh_model_line))
        self.closed = False
        self.native.destroyed.connect(self._on_destroyed)
        _LIVE_WIDGETS.add(self)
        QTimer.singleShot(0, self.guarded(self._keep_rows_together))  # once the subclass has added its controls
        follow_removed_images(napari_viewer)
        painted_mask_keeper(napari_viewer)  # painted masks outlive napari's window (see _kept_edits)
        napari_viewer.layers.events.removed.connect(self.guarded(self._on_layer_removed))
        self.restore_button = PushButton(text="Restore deleted mask", visible=False,
                                         tooltip="Bring back the mask deleted last whose painted edits were not stored "
                                                 "(napari's delete asks nothing and cannot be undone).")
        self.restore_button.changed.connect(self.restore_deleted_mask)
        self._deleted = deleted_masks(napari_viewer)
        self._said_deleted = False  # the status is a deletion notice (a restore from another dock replaces it)
        self._deleted_listener = self.guarded(self._on_deleted_masks)
        self._deleted.listeners.append(self._deleted_listener)

    @property
    def status_layer(self):
        """The image layer the status speaks of, while it exists (None otherwise)."""
        return self._status_layer() if self._status_layer is not None else None

    def _on_layer_removed(self, event) -> None:
        """A status about an image that was just closed says so: it read on as if the image were there (the first-hour
        trial of session 28). Not while work runs: its own messages follow."""
        layer = event.value
        if self.busy or not same_layer(layer, self.status_layer):  # by the layer, never by its name in the text
            return
        if is_source_image(layer):
            self.say(f"{layer.name} was closed", reveal=False)
        elif not self._said_deleted:  # a restored mask deleted again with nothing painted (verification of session
            self.say(f"'{layer.name}' was deleted", reveal=False)  # 32: "restored with its edits" stayed)

    def _on_deleted_masks(self, what: str) -> None:
        """A painted mask was deleted (or one restored): the button shows while one is kept, and a deletion is said."""
        newest = self._deleted.newest_name()
        self.restore_button.visible = newest is not None
        if newest is not None:  # the name in the tooltip: a long one in the text widened the dock
            self.restore_button.tooltip = f"Bring back '{newest}' as it was when deleted, painted edits and all."
            if what == "kept" and not self.busy:
                self.say(f"'{newest}' was deleted with painted edits that were not stored: Restore deleted mask (below) "
                         "brings it back")
                self._said_deleted = True
        if what == "restored" and self._said_deleted:  # restored from another dock: this one's notice is stale
            self._said_deleted = False
            self.say(self._deleted.last_note)

    def restore_deleted_mask(self, _=None):
        """Add back the painted mask deleted last (see :class:`~._layers.DeletedMasks`); returns the layer or None."""
        layer, note = self._deleted.restore(self.viewer)
        if layer is not None:
            ready_to_paint(self.viewer, layer)  # as it was when deleted: selected, the brush ready
        self.say(note, about=layer)
        # said again once the choosers have followed the new layer (Segment's "segmented with ..." replaced it at once)
        QTimer.singleShot(0, self.guarded(lambda: self.say(note, about=layer)))
        return layer

    def _keep_rows_together(self) -> None:
        """A stretch below the last control (a dock taller than its controls spread the rows apart), and a floor under
        the dock's height: docks sharing a column are given heights by Qt, which left one 60 px tall."""
        self.controls.layout().addStretch(1)
        self._floor_docks()
        # as wide as the controls with the scroll bar beside them (it took its width from the rightmost button)
        self.native.setMinimumWidth(self.controls.minimumSizeHint().width()
                                    + self.native.verticalScrollBar().sizeHint().width() + 2 * self.native.frameWidth())

    def _docks_here(self) -> list:
        return _docks_of(self.viewer)

    def _floor_docks(self) -> None:
        """Every dock of this viewer gets the floor that the plugin's docks open in it allow (:func:`dock_floor`), a
        dock opened or closed."""
        from qtpy.QtWidgets import QApplication

        screen = self.native.screen() or QApplication.primaryScreen()
        height = screen.availableGeometry().height() if screen is not None else 1080
        docks = self._docks_here()
        floor = dock_floor(len(docks) + len(_docked_in(self.viewer, _OTHER_DOCKS)), height)
        for widget in docks:
            least = min(widget.controls.sizeHint().height(), floor)
            if widget.native.minimumHeight() != least:
                widget.native.setMinimumHeight(least)
                dock = widget.native.parentWidget()  # a dock shown already kept the minimum its layout set it
                if dock is not None and dock.layout() is not None:
                    dock.setMinimumHeight(0)  # (its layout's minimum counts the dock's own: it never went down)
                    dock.layout().invalidate()
                    dock.setMinimumHeight(dock.layout().totalMinimumSize().height())

    @property
    def native(self):
        """The scroll area around the controls: napari docks a magicgui widget's ``native``, which for a scrollable
        container is the inner widget, so the scroll area would be left out. ``controls`` is the inner widget."""
        return self.root_native_widget

    @property
    def controls(self):
        """The widget holding the controls' layout (inside the scroll area)."""
        return self.root_native_widget.widget()

    def _on_destroyed(self, _=None) -> None:
        """The widget was closed (napari's window closed, the dock removed): running work is asked to stop
        (a training round then leaves nothing half-written), and its results have nowhere to go."""
        self.closed = True
        self._cancel.set()
        if self._deleted_listener in self._deleted.listeners:
            self._deleted.listeners.remove(self._deleted_listener)
        others = self._docks_here()
        if others:  # the docks left may have their own floor again
            QTimer.singleShot(0, others[0].guarded(others[0]._floor_docks))

    def guarded(self, slot: Callable) -> Callable:
        """``slot`` for a worker's signal: skipped once the widget is closed (see :func:`when_alive`)."""
        alive = when_alive(slot, on_deleted=lambda: setattr(self, "closed", True))

        def call(*args):
            return None if self.closed else alive(*args)
        return call

    def add_common(self) -> None:
        self.extend([self.device, self.cancel_button, self.progress, self.model_line, self.status, self.restore_button])
        self.refresh_model_line()
        self._on_deleted_masks("opened")  # a widget opened after a deletion offers the restore too

    # ---- model line --------------------------------------------------------------------------------
    def model_choice(self):
        """The model this widget would run now (subclasses with a model chooser override this)."""
        return IN_USE

    def refresh_model_line(self) -> None:
        self.model_line.value = self.models.text(self.model_choice())

    def _on_model_changed(self) -> None:
        try:
            self.reset_choices()
            self.refresh_model_line()
        except RuntimeError:  # the widget was closed; the shared ModelInUse outlives it
            self.models.changed.disconnect(self._on_model_changed)

    # ---- status and errors ------------------------------------------------------------------------
    def say(self, text: str, reveal: bool = True, about=None) -> None:
        """Put ``text`` in the status line; ``reveal`` scrolls it into view (not for progress during a run: a user
        who scrolled to the loss plot is not pulled back at every step). ``about``: the image layer the text speaks
        of, if any (closing it replaces the text)."""
        self.status.value = breakable(text)
        # weakly: a closed image is not kept in memory for a status line about it
        # (the layer itself: a proxy napari hands out may be a passing object)
        self._status_layer, self._said_deleted = (weakref.ref(unproxied(about)) if about is not None else None), False
        if reveal:
            QTimer.singleShot(0, self.guarded(self._show_status))

    def _show_status(self) -> None:
        """Scroll the status into view (what happened must be seen), once the layout has given the text its height."""
        self.controls.layout().activate()
        self.controls.adjustSize()
        self.native.ensureWidgetVisible(self.status.native, 0, 0)

    def report_error(self, err: BaseException, what: str = "") -> None:
        """The one error path: a one-line message in the status line (and no full progress bar beside it)."""
        self.progress.value = 0
        self.say(f"{what + ': ' if what else ''}error: {one_line(err)}")

    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done
        if text:
            self.say(text, reveal=False)

    # ---- background work ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.worker is not None

    def stop_asked(self) -> bool:
        """For a job's ``should_stop`` (called in its thread): Cancel pressed, or napari quitting. napari's Quit asks the
        workers to quit (``abort_requested``) and waits for them in the GUI thread before any dock hears of it: a job
        that looked at Cancel alone went on to its end (cold review of session 39)."""
        return self._cancel.is_set() or bool(getattr(self.worker, "abort_requested", False))

    def start_work(self, job: Callable, on_result: Callable, busy_text: str, on_event: Optional[Callable] = None,
                   steps: int = 1):
        """Run ``job`` in a worker thread. Its return value goes to ``on_result`` unless it is an
        Exception (returned or raised), which goes to :meth:`report_error`. Returns the worker."""
        self._cancel.clear()
        started: list = []  # the job's generator, once the worker has made it
        if inspect.isgeneratorfunction(job):
            def runs():
                started.append(job())
                return _Failure.wrap((yield from started[0]))
        else:
            def runs():
                return _Failure.wrap(job())
        worker = make_worker(runs, _ignore_errors=True)
        if hasattr(worker, "aborted"):
            # napari quits running workers when its window closes; superqt then stops driving the generator and
            # leaves it suspended, so its clean-up (a round's scratch folder) would wait for garbage collection
            # or never run. Closed here, in the worker's own thread (direct connection), before it finishes.
            worker.aborted.connect(lambda: [generator.close() for generator in started],
                                   Qt.ConnectionType.DirectConnection)
        on_result = once(on_result)  # (it names the job's layers: forgotten once called, or once the worker ended)
        worker.returned.connect(self.guarded(lambda result: self.report_error(result.error)
                                             if isinstance(result, _Failure) else on_result(result)))
        worker.errored.connect(self.guarded(self.report_error))
        if on_event is not None:
            worker.yielded.connect(self.guarded(on_event))
        worker.finished.connect(self.guarded(self._on_finished))
        worker.finished.connect(on_result.forget)
        self.worker = worker
        for button in self._start_buttons:
            button.enabled = False
        self.cancel_button.enabled = True
        self.progress.max, self.progress.value = max(steps, 1), 0
        self.say(busy_text)
        worker.start()
        return worker

    def cancel(self, _=None) -> None:
        if self.busy:
            self._cancel.set()
            self.say("cancelling...")

    def _on_finished(self) -> None:
        self.worker = None
        for button in self._start_buttons:
            button.enabled = True
        self.cancel_button.enabled = False
