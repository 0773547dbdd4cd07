"""The model in use, shared by every widget: which checkpoint, its one display name, loaded predictors.

One :class:`ModelInUse` per model store folder (``model_in_use()``), a QObject whose ``changed`` signal
tells every widget to update its model line when a retrain, *Use this version* or *Roll back* moves
the store's pointer. Loaded models are cached per (checkpoint, device), bounded: every retrain round
adds a version.
"""
from __future__ import annotations

import contextlib
import gc
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Optional

from qtpy.QtCore import QObject, Signal

from ..checkpoints import BUNDLED_MODELS, ModelStore, bundled_checkpoint, bundled_models, read_config
from ..checkpoints.checkpoint import DEFAULT_BUNDLED
from ..checkpoints.lines import ModelLines, bundled_versions
from ..storage import default_model_store_dir

IN_USE = "in use"  # a model choice meaning "whatever the store's pointer says when the work starts"
BUNDLED = "bundled"
FROM_FILE = "from file..."
_CACHE_SIZE = 3


class _PredictorCache:
    """(checkpoint, device) -> Predictor, least recently used dropped first; safe across worker threads."""

    def __init__(self):
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._froze = False

    def get(self, checkpoint: Optional[Path], device: str):
        from ..inference import Predictor

        key = (str(checkpoint), device, _file_stamp(checkpoint))  # a file replaced in place is loaded again
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        predictor = Predictor(checkpoint, device=device)  # outside the lock: loading takes a while
        with self._lock:
            self._items[key] = predictor
            if not self._froze:
                self._froze = True
                freeze_long_lived_objects()
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)
        return predictor


PREDICTORS = _PredictorCache()


def freeze_long_lived_objects() -> None:
    """Leave the objects alive now out of Python's full garbage collections from here on (``gc.freeze``).

    Once napari, Qt, torch and a model are loaded the interpreter tracks some 600,000 objects, and every full
    collection walked them all: a 0.3-0.4 s freeze of the window every few segmentations, longer than drawing the
    new layers (``benchmarks/bench_segment.py``). These objects live as long as the window. Called once, after the
    first model load; reference counting still frees every frozen object that is dropped, only cycles among them
    are never collected.
    """
    gc.freeze()


def _file_stamp(path: Optional[Path]) -> tuple:
    """(modification time, size) of a checkpoint file: a "from file..." checkpoint overwritten by a new training run
    kept running its old weights while the cache was keyed by the path alone."""
    try:
        stat = Path(path).stat()
    except (OSError, TypeError):
        return ()
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=None)
def _bundled_version(name: str = DEFAULT_BUNDLED) -> Optional[str]:
    path = bundled_checkpoint(name)
    return None if path is None else read_config(path).version


def _bundled_model_of(version: object) -> Optional[str]:
    """The name of the installed bundled model whose version this is (its store copy has the same one)."""
    return bundled_versions().get(version)


def bundled_choice(name: str) -> str:
    """The ComboBox value of a bundled model other than the default: ``bundled:skin``."""
    return BUNDLED if name == DEFAULT_BUNDLED else f"{BUNDLED}:{name}"


def _bundled_name(choice) -> Optional[str]:
    """The bundled model's name a choice means (None: not a bundled model)."""
    if choice == BUNDLED:
        return DEFAULT_BUNDLED
    if isinstance(choice, str) and choice.startswith(f"{BUNDLED}:") and choice[len(BUNDLED) + 1:] in BUNDLED_MODELS:
        return choice[len(BUNDLED) + 1:]
    return None


def bundled_label(name: str = DEFAULT_BUNDLED) -> str:
    """A bundled model's one name, everywhere: ``bundled polyp model (acd6352709f0)``."""
    version = _bundled_version(name)
    return f"UNTRAINED model (no bundled {name} weights installed)" if version is None else f"bundled {name} model ({version})"


def version_label(config) -> str:
    """A stored version's one name (a bundled model keeps its own name even when copied into a store)."""
    for name in BUNDLED_MODELS:
        if config.version == _bundled_version(name):
            return bundled_label(name)
    return f"fine-tuned {config.version} (from {config.parent or '-'})"


def file_label(path: Path) -> str:
    """A checkpoint file's name on the *runs* lines: its folder too, its recorded name and its version (two runs'
    ``best.safetensors`` read alike, and the version a layer says it was segmented with matched nothing shown; trial
    of session 28). Only the small JSON beside it is read."""
    shown = f"file {path.parent.name}/{path.name}" if path.parent.name else f"file {path.name}"
    try:
        config = read_config(path)
    except (OSError, ValueError):
        return shown  # loading it says what is wrong
    version = config.version or "no version recorded"
    return f"{shown}: {config.name} ({version})" if config.name else f"{shown} ({version})"


_SET_CACHE: dict = {}  # provenance folder -> (its time stamp, the set's entries, {view: what was made of them})


def _derived_while_unchanged(corrections_dir: Path, view: str, derive, missing, cached_only: bool = False):
    """``derive(entries)`` of the set, kept until the set's provenance folder changes (its time stamp): the entries are
    read once per change, whichever view asks first (the session's writer made two reads of them after each stored
    correction). ``missing`` when the folder is not a set (it is never created here). ``cached_only``: ``missing`` too
    instead of reading a set that changed (for the GUI thread: a set of 300 entries takes 0.2 s to read)."""
    from ..corrections import CorrectionSet

    provenance = Path(corrections_dir) / "provenance"
    try:
        stamp = provenance.stat().st_mtime_ns
    except OSError:
        return missing
    key = str(provenance)
    cached = _SET_CACHE.get(key)
    if cached is None or cached[0] != stamp:
        if cached_only:
            return missing
        cached = _SET_CACHE[key] = (stamp, CorrectionSet(corrections_dir).entries(), {})
    views = cached[2]
    if view not in views:  # (no reading: made from the entries read already)
        views[view] = derive(cached[1])
    return views[view]


def version_scores_cached(corrections_dir: Path) -> dict:
    """Per-version prospective scores of a correction set, read again only when the set changed (the
    model line is refreshed on the GUI thread; the session's writer thread reads them right after it
    stores a correction, so the GUI thread finds them here)."""
    from ..corrections.prospective import scores_by_version

    return _derived_while_unchanged(corrections_dir, "scores", scores_by_version, {})


def stored_corrections_of(corrections_dir: Optional[Path], image_key: Optional[str], cached_only: bool = False) -> list:
    """The set's corrections of the image whose pixels hash to ``image_key`` (``image_hash``), newest last; read again
    only when the set changed (``cached_only``: not read at all then, [] instead). For *Segment*: an image already
    corrected and accepted showed the model's mask as if nothing had been done (trial of session 33). Never creates
    the set."""
    if corrections_dir is None or not image_key:
        return []
    return corrections_by_image(corrections_dir, cached_only).get(image_key, [])


def corrections_by_image(corrections_dir: Path, cached_only: bool = False) -> dict:
    """The set's entries by image (:func:`~napari_unetv2.corrections.correction_set.entries_by_image`), cached while the
    set is unchanged; a worker that stored a correction calls it, so the GUI thread finds them read."""
    from ..corrections.correction_set import entries_by_image

    return _derived_while_unchanged(corrections_dir, "by image", entries_by_image, {}, cached_only)


def prospective_note(version: Optional[str], corrections_dir: Optional[Path]) -> str:
    """A version's prospective score (its masks against the corrections accepted while it was in use,
    with n and a 95% interval) as text; empty while there is none."""
    if version is None or corrections_dir is None:
        return ""
    score = version_scores_cached(corrections_dir).get(version)
    if score is None or score.n == 0:
        return ""
    return "prospective Dice " + score.dice_text()


def model_text(label: str, version: Optional[str], corrections_dir: Optional[Path] = None,
               parent: Optional[str] = None) -> str:
    """The one place the "model in use" line is made: name + version (+ prospective score, or for a fine-tuned version
    where it comes from, with the score of ``parent``, the version it was fine-tuned from, to compare with as it comes:
    a new version showed no score and nothing said when one would come; clinician trial of session 43)."""
    note = prospective_note(version, corrections_dir)
    if not note and corrections_dir is not None and version and _bundled_model_of(version) is None:
        note = "no prospective score yet: each mask of it you correct and accept is a test of it"
    before = prospective_note(parent, corrections_dir) if note else ""
    if before:  # (beside its own as it comes: is it better than the version it was fine-tuned from?)
        note += f" (the version it was fine-tuned from: {before})"
    return label + (f"; {note}" if note else "")


class ModelInUse(QObject):
    changed = Signal()  # another model is in use
    scores_changed = Signal()  # the correction set changed: every model line's prospective score is read again
    # another correction set chosen (in a folder session or in Correct & retrain): the two docks show and store into
    # one set (trial of session 41: the session stored into the set chosen there while Correct & retrain listed, and
    # would retrain on and remove from, the default set)
    correction_set_changed = Signal()
    # Correct & retrain stored a 2-D mask layer's pixels: (layer, mask, correction set folder, entry id, ids of the
    # entries it replaced). The folder session whose image that layer masks takes it as accepted there too (trial of
    # session 31: its Next still asked about "unaccepted edits", and the image was missing from its export); one whose
    # accepted image's entry was replaced takes the new mask as that image's finished mask (trial of session 32).
    correction_stored = Signal(object, object, object, object, object)

    def use_correction_set(self, folder: Path) -> None:
        """The set every dock of this store now shows and stores into."""
        if self.corrections_dir is not None and Path(folder) == Path(self.corrections_dir):
            return
        self.corrections_dir = Path(folder)
        self.correction_set_changed.emit()
        self.scores_changed.emit()

    def __init__(self, store_dir: Path):
        super().__init__()
        self.store = ModelStore(store_dir)
        # a killed round's scratch folder goes when any dock opens, not only Correct & retrain (verification of
        # session 39: a session resumed with Segment beside it kept it)
        with contextlib.suppress(OSError):
            self.store.remove_stale_runs()
        # The correction set whose prospective scores the model line shows (the widgets set the one chosen).
        from ..remembered import correction_set_in_use

        self.corrections_dir: Optional[Path] = correction_set_in_use()  # (the set the widgets offer: the one used last)
        # Another window, or `unetv2` beside napari, may move the pointer: store.json is replaced by a rename in the
        # store's folder, which the watcher reports; every widget then hears of it as of a move made here (the model
        # line named one model while the next Segment ran another).
        from qtpy.QtCore import QFileSystemWatcher

        self._seen = self.store.current
        self._watcher = QFileSystemWatcher([str(self.store.root)], self)
        self._watcher.directoryChanged.connect(self._on_store_folder_changed)

    def _on_store_folder_changed(self, _=None) -> None:
        current = self.store.current
        if current != self._seen:
            self._seen = current
            self.changed.emit()

    @property
    def version(self) -> Optional[str]:
        """The stored version in use; None = the bundled model."""
        return self.store.current

    def checkpoint(self, choice=IN_USE) -> Optional[Path]:
        """Resolve a widget's model choice (IN_USE, BUNDLED, a stored version or a file path)."""
        if choice in (None, IN_USE):
            return self.store.current_checkpoint()
        if _bundled_name(choice) is not None:
            return bundled_checkpoint(_bundled_name(choice))
        if isinstance(choice, Path):
            return choice
        return self.store.path_of(choice)

    def label(self, choice=IN_USE) -> str:
        version, missing = self.store.pointer() if choice in (None, IN_USE) else (choice, None)  # (one read)
        if missing:
            return (f"{bundled_label(DEFAULT_BUNDLED)}, in place of version {missing} (in use, but missing from the model "
                    "store)")
        if version is None or _bundled_name(version) is not None:
            return bundled_label(_bundled_name(version) or DEFAULT_BUNDLED)
        if isinstance(version, Path):
            return file_label(version)
        name = _bundled_model_of(version)
        if name is not None:  # a bundled model copied into the store to be used: still its one name
            return bundled_label(name)
        configs = {c.version: c for c in self.store.versions()}
        return version_label(configs[version]) if version in configs else f"missing version {version}"

    def version_id(self, choice=IN_USE) -> Optional[str]:
        """The version id a choice runs (a bundled model's own id too); None for a file."""
        version = self.store.current if choice in (None, IN_USE) else choice
        if version is None or _bundled_name(version) is not None:
            return _bundled_version(_bundled_name(version) or DEFAULT_BUNDLED)
        return version if isinstance(version, str) else None

    def text(self, choice=IN_USE) -> str:
        version, parent = self.version_id(choice), None
        # (its parent read only for a fine-tuned version, with a correction set: the line is made on many GUI events)
        if version and _bundled_model_of(version) is None and self.corrections_dir is not None:
            parent = next((c.parent for c in self.store.versions() if c.version == version), None)
        return model_text(self.label(choice), version, self.corrections_dir, parent if isinstance(parent, str) else None)

    def choices(self) -> list[tuple[str, object]]:
        """(label, value) for a model ComboBox: the model in use first, then every model one can pick."""
        found = [(f"in use: {self.label()}", IN_USE)]
        found += [(bundled_label(name), bundled_choice(name)) for name in bundled_models()]
        bundled = {_bundled_version(name) for name in bundled_models()}
        # a bundled model copied into the store to be put in use is listed once, as the bundled model
        found += [(version_label(c), c.version) for c in self.store.versions() if c.version not in bundled]
        return found

    def choice_of(self, version: Optional[str]) -> object:
        """The ComboBox value that means ``version``: a bundled model's own choice for it or its store copy."""
        if version is None:
            return BUNDLED
        name = _bundled_model_of(version)
        return version if name is None else bundled_choice(name)

    def related(self, a: Optional[str], b: Optional[str]) -> bool:
        """Whether two versions are of one model's line (``ModelLines.related``; a caller asking about many reads
        :meth:`lines` once instead)."""
        return self.lines().related(a, b)

    def derived_from(self, choice) -> bool:
        """Whether the model in use was fine-tuned from the model ``choice`` names (and is not that model)."""
        if choice in (None, IN_USE) or isinstance(choice, Path):
            return False
        chosen, in_use = self.version_id(choice), self.version_id()
        return chosen is not None and chosen != in_use and chosen in self.lineage(in_use)

    def predictor(self, checkpoint: Optional[Path], device: str):
        """A loaded model (cached). Call from a worker thread: loading takes a while."""
        return PREDICTORS.get(checkpoint, device)

    # Moving the pointer: always through here, so every widget hears of it.
    def use(self, version: Optional[str]) -> None:
        """Put a stored version in use; None or the default bundled model's choice: the bundled default. Another
        bundled model (``bundled:skin``) is copied into the store first, so that it can be in use and fine-tuned."""
        name = _bundled_name(version)
        if name == DEFAULT_BUNDLED:
            version = None
        elif name is not None:
            path = bundled_checkpoint(name)
            if path is None:
                raise ValueError(f"The bundled {name} model is not installed.")
            version = self.store.add(path).version
        self.store.use(version)
        self._seen = self.store.current
        self.changed.emit()

    def lines(self) -> ModelLines:
        """The known versions' lines: the bundled models' and the store's (``checkpoints/lines.py``)."""
        return ModelLines.known(self.store)

    def lineage(self, version: Optional[str]) -> set[str]:
        """``version`` and every version it was fine-tuned from, as far as the parents are known."""
        return self.lines().lineage(version)

    def roll_back(self) -> Optional[str]:
        version = self.store.roll_back()
        self._seen = self.store.current
        self.changed.emit()
        return version


_INSTANCES: dict[str, ModelInUse] = {}


def model_in_use(store_dir: Optional[Path] = None) -> ModelInUse:
    """The shared :class:`ModelInUse` of a model store folder (default: the user's store)."""
    root = Path(store_dir or default_model_store_dir()).resolve()
    if str(root) not in _INSTANCES:
        _INSTANCES[str(root)] = ModelInUse(root)
    return _INSTANCES[str(root)]
