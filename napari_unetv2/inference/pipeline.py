"""Keep the network busy on a folder: decoding and preprocessing ahead in one thread, writing behind in
another, the forward pass in the caller's thread.

- :class:`PredictionStream` reads and prepares the next images (``Predictor.prepare``: scaling, resize,
  normalisation) while the network runs on the current ones; frames queued together go through the
  network as one batch (``batch_size``; resize mode makes every frame the trained size). Tile mode and
  stacks are predicted whole, in order. Memory stays bounded: at most ``prefetch`` images wait.
- :class:`ParallelPredictionStream` (the CPU's default for resize mode when several cores are free) runs
  whole predictions -- read, prepare, forward, back to full size -- for several images at once, each in
  its own thread with its share of the torch threads. On a small CPU this beats one image at a time on
  every core: a forward on two threads waits at each layer's barrier, and the reading and writing threads
  beside it take a core away from one of the two, stalling both; independent single-thread streams fill
  each other's gaps instead. Results come back in order; at most ``window`` images are in flight.
- :class:`OrderedWriter` runs writes one after another in a background thread (bounded queue), so
  encoding and ``fsync`` overlap the next forward pass; its first error is raised in the caller.

With ``batch_size=1`` the results are exactly those of ``Predictor.predict`` (the same functions in the
same order; tested), the files byte-identical. The parallel stream's are exactly those of
``Predictor.predict(..., threads=t)`` with its per-stream thread count ``t``; a different thread count
changes probabilities only by float rounding (about 1e-6: oneDNN splits the work differently).
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from ..files import read_image
from .predictor import Prediction, Predictor, PreparedFrame
from .threads import restore_default_threads

_END = object()


class PredictionStream:
    """Predictions for ``paths``, in order, computed ahead of the caller.

    ``result(path)`` returns the Prediction of ``path`` or raises what reading or predicting it raised
    (e.g. ``UnreadableImageError``, ``ValueError``) — exactly where the sequential loop would. Paths the
    caller never asks for are dropped; a path that was not in the list is predicted on the spot.
    """

    def __init__(
        self,
        predictor: Predictor,
        paths: list[Path],
        threshold: Optional[float] = None,
        mode: Optional[str] = None,
        tile_size: int = 512,
        tta: bool = False,
        batch_size: int = 1,
        prefetch: int = 4,
        read: Callable[[Path], object] = read_image,
    ):
        if batch_size < 1 or prefetch < 1:
            raise ValueError(f"batch_size and prefetch must be at least 1, got {batch_size} and {prefetch}.")
        self.predictor, self.read = predictor, read
        self.predict_kwargs = {"threshold": threshold, "mode": mode, "tile_size": tile_size, "tta": tta}
        self.resize_mode = (mode or predictor.config.inference_mode) == "resize"
        self.batch_size = batch_size
        self._waiting: queue.Queue = queue.Queue(maxsize=prefetch)
        self._ready: deque = deque()  # (path, Prediction | Exception), in order
        self._ahead = set(paths)  # listed paths not yet handed out: only these are worth waiting for
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_ahead, args=(list(paths),), daemon=True,
                                        name="unetv2-read-ahead")
        self._reader.start()

    # -- reader thread ---------------------------------------------------------------------------
    def _load(self, path: Path) -> Union[PreparedFrame, object, Exception]:
        try:
            image = self.read(path)
            if self.resize_mode and getattr(image, "ndim", 0) in (2, 3):
                try:
                    return self.predictor.prepare(image)
                except ValueError:
                    pass  # a stack or an odd shape: predict() handles it (and words its error)
            return image
        except Exception as err:  # handed to the caller, who decides what is fatal
            return err

    def _read_ahead(self, paths: list[Path]) -> None:
        torch.set_num_threads(1)  # this thread's own setting: the network keeps the other cores
        for path in paths:
            item = self._load(path)
            while not self._stop.is_set():
                try:
                    self._waiting.put((path, item), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return
        self._waiting.put(_END)

    # -- caller's thread ---------------------------------------------------------------------------
    def _take(self, block: bool):
        item = self._waiting.get(block=block)
        if item is _END:
            self._waiting.put(_END)  # stays the last word for every later take
            return None
        return item

    def _advance(self) -> bool:
        """Move the next image (or batch of prepared frames) from the reader to ``_ready``."""
        first = self._take(block=True)
        if first is None:
            return False
        path, item = first
        if not isinstance(item, PreparedFrame):
            self._ready.append((path, self._predict_whole(item)))
            return True
        batch = [(path, item)]
        while len(batch) < self.batch_size:
            try:
                following = self._take(block=False)
            except queue.Empty:
                break
            if following is None:
                break
            if not isinstance(following[1], PreparedFrame):
                self._ready.extend(self._predict_batch(batch))
                self._ready.append((following[0], self._predict_whole(following[1])))
                return True
            batch.append(following)
        self._ready.extend(self._predict_batch(batch))
        return True

    def _predict_batch(self, batch: list[tuple[Path, PreparedFrame]]) -> list[tuple[Path, object]]:
        kwargs = {k: self.predict_kwargs[k] for k in ("threshold", "tta")}
        try:
            return list(zip((p for p, _ in batch), self.predictor.predict_prepared([f for _, f in batch], **kwargs)))
        except Exception as err:  # raised by result() for these paths, where the sequential loop raises it
            return [(p, err) for p, _ in batch]

    def _predict_whole(self, item) -> Union[Prediction, Exception]:
        if isinstance(item, Exception):
            return item
        try:
            return self.predictor.predict(item, **self.predict_kwargs)
        except Exception as err:  # raised by result() for this path, where the sequential loop raises it
            return err

    def result(self, path: Path) -> Prediction:
        if path not in self._ahead:
            # Not in the list, or handed out already: predicted here, as the sequential loop would. Advancing
            # to it would have thrown away every prediction made ahead (and made each one again, unread ahead).
            return self.predictor.predict(self.read(path), **self.predict_kwargs)
        self._ahead.discard(path)
        while True:
            while self._ready:
                ready_path, outcome = self._ready.popleft()
                if ready_path == path:
                    if isinstance(outcome, Exception):
                        raise outcome
                    return outcome
            if not self._advance():  # (a path passed over by an earlier result(): dropped from the stream)
                return self.predictor.predict(self.read(path), **self.predict_kwargs)

    def close(self) -> None:
        """Stop reading ahead (e.g. after a cancel); waits for the reader thread."""
        self._stop.set()
        while self._reader.is_alive():
            try:
                self._waiting.get(timeout=0.1)
            except queue.Empty:
                pass
        self._reader.join()
        restore_default_threads()

    def __enter__(self) -> "PredictionStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def split_threads(total: int, streams: int) -> list[int]:
    """``total`` torch threads shared by ``streams`` concurrent predictions, as evenly as possible (the
    first ones get one more when it does not divide)."""
    streams = max(1, min(streams, total))
    return [total // streams + (1 if i < total % streams else 0) for i in range(streams)]


# Pixels of the images the parallel streams hold at once (read, in progress, or done and not yet taken): about 20
# bytes each while predicted, so about 1.3 GB; frames of a few megapixels run side by side as before.
PIXEL_BUDGET = 64_000_000


def pixels_of(image) -> int:
    """An image's pixels (an RGB(A) pixel counts once; a stack's slices all count)."""
    shape = getattr(image, "shape", ())
    if len(shape) >= 3 and shape[-1] in (3, 4):
        shape = shape[:-1]
    return int(np.prod(shape)) if len(shape) else 0


class ParallelPredictionStream:
    """Predictions for ``paths``, in order, each computed whole by one of ``len(threads)`` worker threads.
    Image ``i`` runs on ``threads[i % len(threads)]`` torch threads, whichever worker takes it, so its
    result does not depend on scheduling. The same contract as :class:`PredictionStream`: ``result(path)``
    returns the Prediction or raises what reading or predicting it raised; paths the caller skips are
    dropped; an unlisted path is predicted on the spot.

    Memory: at most ``window`` images (default ``2 * len(threads)``) are in progress or done and waiting
    for the caller, each with its full-size probability and mask, and together at most ``pixel_budget`` pixels
    (default :data:`PIXEL_BUDGET`) besides the image the caller waits for next: a prediction needs about 20 bytes
    per pixel, so four streams over 100-megapixel images needed 8 GB at once. An image that would go over waits
    for the others to be taken, except the one the caller waits for next, which always runs (the others' results
    can only be taken after it; one image alone is bounded by the reader's pixel limit). A stack (resize mode,
    slice by slice) runs on one stream's share of the threads while the others go on.
    """

    def __init__(
        self,
        predictor: Predictor,
        paths: list[Path],
        threads: list[int],
        threshold: Optional[float] = None,
        mode: Optional[str] = None,
        tile_size: int = 512,
        tta: bool = False,
        window: Optional[int] = None,
        read: Callable[[Path], object] = read_image,
        pixel_budget: Optional[int] = None,
    ):
        if not threads or min(threads) < 1:
            raise ValueError(f"every stream needs at least one thread, got {threads}.")
        self.predictor, self.read = predictor, read
        self.predict_kwargs = {"threshold": threshold, "mode": mode, "tile_size": tile_size, "tta": tta}
        self._threads = list(threads)
        self._paths = list(paths)
        self._position = {path: i for i, path in enumerate(self._paths)}
        self._window = window or 2 * len(threads)  # images started but not yet taken by the caller
        self._budget = PIXEL_BUDGET if pixel_budget is None else pixel_budget
        self._pixels: dict[int, int] = {}  # index -> pixels, of the images read and not yet taken by the caller
        self.most_pixels_at_once = 0  # (for the tests and benchmarks)
        self._results: dict[int, object] = {}  # index -> Prediction | the exception it raised
        self._next = 0  # the next index a worker starts
        self._taken = 0  # indices below this were taken (or skipped) by the caller
        self._stop = False
        self._changed = threading.Condition()
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"unetv2-stream-{k}")
                         for k in range(len(threads))]
        for worker in self._workers:
            worker.start()

    def _claim(self) -> Optional[int]:
        with self._changed:
            while not self._stop and self._next < len(self._paths) and self._next >= self._taken + self._window:
                self._changed.wait()
            if self._stop or self._next >= len(self._paths):
                return None
            self._next += 1
            return self._next - 1

    def _work(self) -> None:
        while (index := self._claim()) is not None:
            try:  # predict() sets this image's thread count for the call and restores it
                image = self.read(self._paths[index])
                if not self._admit(index, pixels_of(image)):
                    continue  # closed, or skipped by the caller meanwhile
                outcome = self.predictor.predict(image, threads=self._threads[index % len(self._threads)],
                                                 **self.predict_kwargs)
                del image
            except BaseException as err:  # noqa: BLE001 (handed to the caller, who decides what is fatal)
                outcome = err
            with self._changed:
                if index >= self._taken:
                    self._results[index] = outcome
                else:
                    self._pixels.pop(index, None)
                self._changed.notify_all()

    def _admit(self, index: int, pixels: int) -> bool:
        """Wait until ``pixels`` more fit the budget (at once for the image the caller waits for next, or when nothing
        else is held); False when the stream closed or the caller skipped this image meanwhile."""
        with self._changed:
            while not self._stop and index > self._taken and self._pixels \
                    and sum(self._pixels.values()) + pixels > self._budget:
                self._changed.wait()
            if self._stop or index < self._taken:
                return False
            self._pixels[index] = pixels
            self.most_pixels_at_once = max(self.most_pixels_at_once, sum(self._pixels.values()))
            return True

    def result(self, path: Path) -> Prediction:
        index = self._position.get(path)
        if index is None or index < self._taken:
            return self.predictor.predict(self.read(path), **self.predict_kwargs)
        with self._changed:
            for skipped in range(self._taken, index):
                self._results.pop(skipped, None)
                self._pixels.pop(skipped, None)
            self._taken, self._next = index, max(self._next, index)  # skipped paths are not started
            self._changed.notify_all()
            while index not in self._results:
                if self._stop:
                    raise RuntimeError("The prediction stream was closed before this image was predicted.")
                self._changed.wait()
            outcome = self._results.pop(index)
            self._pixels.pop(index, None)
            self._taken = index + 1
            self._changed.notify_all()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        """Start nothing more (e.g. after a cancel); waits for the images in progress."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        for worker in self._workers:
            worker.join()
        self._results.clear()
        self._pixels.clear()
        restore_default_threads()

    def __enter__(self) -> "ParallelPredictionStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OrderedWriter:
    """Run ``submit(fn, *args)`` calls in order in one background thread; ``close()`` waits for all.

    At most ``pending`` calls wait (``submit`` blocks beyond: memory stays bounded). The first error is
    re-raised by the next ``submit`` or by ``close``; calls after it are not run.
    ``background=False`` runs each call at once in the caller's thread (the sequential behaviour).
    """

    def __init__(self, pending: int = 8, background: bool = True):
        self._calls: queue.Queue = queue.Queue(maxsize=pending)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="unetv2-writer") if background else None
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        while True:
            call = self._calls.get()
            if call is _END:
                return
            if self._error is None:
                fn, args = call
                try:
                    fn(*args)
                except BaseException as err:  # noqa: BLE001 (re-raised in the caller's thread)
                    self._error = err

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable, *args) -> None:
        self._raise_error()
        if self._thread is None:
            fn(*args)
        else:
            self._calls.put((fn, args))

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._calls.put(_END)
            self._thread.join()
        self._raise_error()

    def __enter__(self) -> "OrderedWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # finish what was handed over (each write is atomic), keep the original exception
            try:
                self.close()
            except Exception:  # noqa: BLE001
                pass
