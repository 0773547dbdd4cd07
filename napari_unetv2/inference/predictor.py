"""The predictor: one object behind the widget, the CLI and scripts.

image (any dtype, 2-D / RGB / RGBA / stack) -> [0, 1] scaling -> RGB -> normalisation
  -> ``resize`` (whole frame at the trained size) or ``tile`` (native resolution, Gaussian-blended windows)
  -> probability, mask and (optionally) attention maps on the image's own pixel grid.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints.checkpoint import ModelConfig, load_checkpoint
from ..checkpoints.names import resolve_checkpoint
from ..devices import resolve_device
from ..model import DEFAULT_ARCH, MIN_SIDE, UNetV2, network_name
from .allocator import reuse_freed_memory
from .fast import as_channels_last, optimize_for_cpu
from .preprocess import normalize, to_rgb, to_unit_range
from .threads import cpu_threads
from .tiling import gaussian_weight, tile_boxes

ProgressFn = Callable[[int, int], None]
MIN_RESIZE_SIDE = 8
StopFn = Callable[[], bool]


class PredictionCancelled(Exception):
    """Raised between tiles or slices when the caller asked to stop."""


@dataclass
class Prediction:
    """probability: float32 in [0, 1], the image's spatial shape ((Z,) H, W).
    mask: uint8 {0, 1}, same shape (probability >= threshold).
    attention: when asked, {name: float32 map in [0, 1] of the same shape}; names are
        ``L<level> spatial attention (1/<stride>)`` for the four levels.
    """

    probability: np.ndarray
    mask: np.ndarray
    attention: Optional[dict[str, np.ndarray]] = None
    model_version: str = ""
    mode: str = "resize"
    info: dict = field(default_factory=dict)
    colour_note: str = ""  # set by the Segment widget's worker: what the model was given of a grey/RGBA image


def attention_layer_name(level: int, stride: int) -> str:
    return f"L{level} spatial attention (1/{stride})"


def colour_note(image: np.ndarray, rgb: Optional[bool] = None) -> str:
    """What the model is given of an image that is not plain RGB ("" for RGB): a grey image's one channel repeated as
    R, G and B, or a transparent RGBA image's alpha left out. Both ran without a word (first-hour trial of session 28);
    the models here were trained on colour frames, so a grey image is outside what they have seen."""
    shape = image.shape
    is_stack = check_image_shape(shape, rgb)
    channels = shape[-1] if (len(shape) == 4 or (len(shape) == 3 and not is_stack)) else 1
    if channels == 1:
        return ("Grey image: its one channel was given to the model as red, green and blue; the model was trained on "
                "colour frames, so check the mask closely.")
    if channels == 4 and np.ptp(image[..., 3]) > 0:
        return "Its alpha channel (transparency) was left out: the model sees red, green and blue only."
    return ""


def check_image_shape(shape: tuple[int, ...], rgb: Optional[bool] = None) -> bool:
    """Check a shape and return whether it is a stack; raise ValueError stating the rule otherwise.

    Accepted: (H, W) gray; (H, W, 1|3|4); (Z, H, W) gray stack; (Z, H, W, 1|3|4) stack. ``rgb`` (e.g.
    napari's ``layer.rgb``) settles a 3-D array whose last axis is 3 or 4. Sides must be >= 8 pixels.
    """
    ndim = len(shape)
    if 0 in shape:
        raise ValueError(f"The image is empty (shape {shape}).")
    if ndim == 2:
        is_stack, spatial = False, shape
    elif ndim == 3:
        if shape[-1] == 2 and not rgb:
            raise ValueError(f"Shape {shape}: 2 channels is neither grayscale nor RGB(A); pick the channels to use.")
        colour = shape[-1] in (1, 3, 4) if rgb is None else (rgb or shape[-1] == 1)
        if colour and shape[-1] not in (1, 3, 4):
            raise ValueError(f"A colour image needs 1, 3 or 4 channels in the last axis; got shape {shape}.")
        is_stack, spatial = not colour, (shape[1:] if not colour else shape[:2])
    elif ndim == 4:
        if shape[-1] not in (1, 3, 4):
            raise ValueError(f"A 4-D array must be (Z, H, W, C) with C in 1/3/4; got shape {shape}.")
        is_stack, spatial = True, shape[1:3]
    else:
        raise ValueError(
            f"Expected (H, W), (H, W, C), (Z, H, W) or (Z, H, W, C); got a {ndim}-D array of shape {shape}."
        )
    if min(spatial) < MIN_RESIZE_SIDE:
        hint = ""
        if ndim == 3 and is_stack and shape[-1] in (3, 4):
            # napari opens a colour image too small for it to guess RGB as a stack of grey planes
            hint = f" (read as a stack of {shape[0]} grey {shape[1]}x{shape[2]} planes"
            # (napari cannot be told afterwards: the hint names what reads it as colour; trial of session 27)
            hint += (f"; if it is one {shape[0]}x{shape[1]} colour image, open it as RGB: napari reads colour images "
                     "this small as stacks; the Batch folder widget and `unetv2 predict` read it as colour, and in "
                     "napari's console `viewer.add_image(viewer.layers.selection.active.data, rgb=True)` adds it as "
                     "one)" if min(shape[:2]) >= MIN_RESIZE_SIDE else ")")
        raise ValueError(f"Image is {spatial[0]}x{spatial[1]}{hint}; both sides must be at least {MIN_RESIZE_SIDE} pixels.")
    return is_stack


def split_image(image: np.ndarray, rgb: Optional[bool] = None) -> tuple[np.ndarray, bool]:
    """(array with any single channel axis squeezed, is_stack) after :func:`check_image_shape`."""
    image = np.asarray(image)
    is_stack = check_image_shape(image.shape, rgb)
    if image.shape[-1] == 1 and image.ndim in (3, 4) and (image.ndim == 4 or not is_stack):
        image = image[..., 0]
    return image, is_stack


@dataclass
class PreparedFrame:
    """One 2-D image ready for the network in resize mode (see :meth:`Predictor.prepare`)."""

    batch: torch.Tensor  # (1, 3, h, w): scaled, resized to the trained size, normalised
    height: int  # the image's own size, to which the output is resized back
    width: int


PRECISIONS = ("float32", "float16")


class Predictor:
    """Segment images with a U-Net v2 checkpoint.

    ``checkpoint``: a .safetensors path, a bundled model's name (``polyp``, ``skin``), or None for the
    bundled default model (when the package ships
    one; otherwise an untrained model, clearly labelled as such in ``self.description``).
    ``fast`` (default): on the CPU, run an inference-only copy rewritten for speed (``inference/fast.py``:
    oneDNN fused layers, channels_last, BatchNorm in place; logits equal eager float32 within 1e-4 where |logit| <= 50, see that
    module; Conv+BN folding is not part of it).
    ``self.model`` stays the model as loaded (what training and saving use); ``self.network`` runs.
    ``precision``: "float32" (default) or "float16" (CUDA autocast, an explicit option). On an H100,
    float16 autocast made ``predict`` slower, not faster: 21.5 against 16.9 ms per 1232x1048 frame for the
    bundled model and 23.2 against 17.9 ms for the paper's network (benchmarks/bench_cuda_predict.py); at
    batch 1 these networks are bound by kernel launches, and autocast adds cast kernels.
    ``threads``: torch CPU threads during ``predict`` (default: ``threads.default_cpu_threads()``),
    set for the call and restored after it.
    On the CPU, the first Predictor of a process also makes glibc's malloc keep freed memory for the next
    forward pass (process-wide and lasting, ``inference/allocator.py``; ``NAPARI_UNETV2_MALLOC=default``
    opts out); ``self.malloc_state`` says what came of it.
    """

    def __init__(
        self,
        checkpoint: Union[str, Path, None] = None,
        device: str = "auto",
        model: Optional[UNetV2] = None,
        config: Optional[ModelConfig] = None,
        trusted: bool = False,
        fast: bool = True,
        threads: Optional[int] = None,
        precision: str = "float32",
    ):
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}.")
        if precision == "float16" and self.device.type != "cuda":
            raise ValueError(f"precision 'float16' (autocast) is for CUDA devices; this Predictor runs on {self.device}.")
        self.precision = precision
        if model is not None:
            self.model, self.config = model, config or ModelConfig.for_model(model)
            self.source = "in-memory model"
        else:
            path = resolve_checkpoint(checkpoint)
            if path is None:
                self.model = UNetV2("tf_efficientnet_lite0", channels=32)
                self.config = ModelConfig.for_model(self.model, input_size=(256, 256), name="UNTRAINED")
                self.source = "UNTRAINED model (no bundled weights in this install): outputs are meaningless"
            else:
                self.model, self.config = load_checkpoint(path, trusted=trusted)
                self.source = str(path)
        self.model.to(self.device).eval()
        # Process-wide, once: freed activations stay for the next call instead of page-faulting in anew.
        self.malloc_state = reuse_freed_memory() if self.device.type == "cpu" else "untouched"
        self.threads = threads
        self.fast = fast and self.device.type == "cpu"
        self.network = optimize_for_cpu(self.model) if self.fast else self.model

    @property
    def description(self) -> str:
        cfg = self.config
        name = cfg.name or cfg.encoder
        # a baseline says it is one (a U-Net read like U-Net v2's "[encoder, c=32, …]"; trial of session 28)
        network = "" if cfg.arch == DEFAULT_ARCH else f"{network_name(cfg.arch)}, "
        version = cfg.version or "no version recorded"
        return f"{name} [{network}{cfg.encoder}, c={cfg.channels}, version {version}] from {self.source}"

    def mode_note(self, mode: Optional[str]) -> str:
        """What to know before running ``mode`` ("" when nothing): tile mode on a model trained on whole frames resized
        sees lesions at another scale (on a 6000x4000 frame the bundled model's tiles found 0.05% foreground against
        22% resized, ground truth 21%). The widget and the CLI say the same."""
        if (mode or self.config.inference_mode) != "tile" or self.config.inference_mode != "resize":
            return ""
        height, width = self.config.input_size
        return (f"Tile mode: this model was trained on whole frames resized to {height}x{width}, so in tiles at full "
                "resolution it sees lesions at another scale; 'model default' (resize) suits it.")

    @property
    def is_untrained(self) -> bool:
        return self.config.name == "UNTRAINED"

    def _autocast(self):
        if self.precision == "float16":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor, tta: bool, attention: bool) -> tuple[torch.Tensor, list]:
        """Probability (B, 1, h, w) and spatial-attention maps at the input size (averaged over flips)."""
        flips = [(), (-1,), (-2,)] if tta else [()]
        if self.fast:
            batch = as_channels_last(batch)
        prob_sum, att_sum = None, None
        for dims in flips:
            x = batch.flip(dims) if dims else batch
            with self._autocast():
                out = self.network(x, return_attention=attention)
            prob = torch.sigmoid(out.logits.float())
            prob = prob.flip(dims) if dims else prob
            prob_sum = prob if prob_sum is None else prob_sum + prob
            if attention:
                maps = [
                    F.interpolate(a.spatial.float(), size=batch.shape[-2:], mode="bilinear", align_corners=False)
                    for a in out.attention
                ]
                maps = [m.flip(dims) if dims else m for m in maps]
                att_sum = maps if att_sum is None else [s + m for s, m in zip(att_sum, maps)]
        n = len(flips)
        return prob_sum / n, ([a / n for a in att_sum] if attention else [])

    def _resize_input(self, rgb01: np.ndarray) -> torch.Tensor:
        """(H, W, 3) in [0, 1] -> the network's (1, 3, h, w) input at the trained size, normalised."""
        x = torch.from_numpy(rgb01).permute(2, 0, 1)[None].to(self.device)  # strided views are fine: no copy
        x = F.interpolate(x, size=tuple(self.config.input_size), mode="bilinear", align_corners=False, antialias=True)
        return normalize(x.clamp(0, 1), self.config.normalization)

    @staticmethod
    def _resize_output(maps: list[torch.Tensor], height: int, width: int) -> list[np.ndarray]:
        return [F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
                for t in maps]

    def _predict_resize(self, rgb01: np.ndarray, tta: bool, attention: bool) -> tuple[np.ndarray, list]:
        prob, maps = self._forward(self._resize_input(rgb01), tta, attention)
        prob, *maps = self._resize_output([prob, *maps], *rgb01.shape[:2])
        return prob, maps

    def prepare(self, image: np.ndarray, rgb: Optional[bool] = None) -> PreparedFrame:
        """Resize mode, first stage: scale, resize and normalise one 2-D image (no network involved, so a
        pipeline can run it in another thread). :meth:`predict_prepared` finishes the job."""
        array, is_stack = split_image(image, rgb)
        if is_stack:
            raise ValueError("prepare() takes one 2-D image; use predict() for a stack.")
        rgb01 = to_rgb(to_unit_range(array)).astype(np.float32, copy=False)
        batch = self._resize_input(rgb01)
        # The fast network's layout, made here (off the network's thread) rather than in _forward.
        return PreparedFrame(as_channels_last(batch) if self.fast else batch, *rgb01.shape[:2])

    def predict_prepared(self, frames: list[PreparedFrame], threshold: Optional[float] = None,
                         tta: bool = False) -> list[Prediction]:
        """Resize mode for frames from :meth:`prepare`, in one batch through the network. One frame gives
        exactly what :meth:`predict` gives (same functions, same order)."""
        threshold = self._check_threshold(threshold)
        started = time.perf_counter()
        with cpu_threads(self.threads):
            prob, _ = self._forward(torch.cat([f.batch for f in frames]), tta, False)
        share = (time.perf_counter() - started) / len(frames)  # each frame's part of the batch's forward pass
        predictions = []
        for i, f in enumerate(frames):
            started = time.perf_counter()
            prediction = self._assemble(self._resize_output([prob[i: i + 1]], f.height, f.width), [[]], False,
                                        threshold, "resize", tta, None, False)
            prediction.info["seconds"] = share + time.perf_counter() - started
            predictions.append(prediction)
        return predictions

    def _check_threshold(self, threshold: Optional[float]) -> float:
        threshold = self.config.threshold if threshold is None else float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}.")
        return threshold

    def _predict_tiled(
        self, rgb01: np.ndarray, tile: int, overlap: float, tta: bool, attention: bool, tick: Callable[[], None]
    ) -> tuple[np.ndarray, list]:
        height, width = rgb01.shape[:2]
        if self.config.normalization.get("mode") == "zscore":
            # Statistics of the whole image, not of each tile, so tiles agree with each other.
            mean, std = float(rgb01.mean()), float(rgb01.std()) or 1.0

            def normalise_tile(t: torch.Tensor) -> torch.Tensor:
                return (t - mean) / std
        else:
            def normalise_tile(t: torch.Tensor) -> torch.Tensor:
                return normalize(t, self.config.normalization)
        prob_acc = np.zeros((height, width), np.float32)
        weight_acc = np.zeros((height, width), np.float32)
        att_acc = [np.zeros((height, width), np.float32) for _ in range(4)] if attention else []
        for y0, y1, x0, x1 in tile_boxes(height, width, max(tile, MIN_SIDE), overlap):
            window = rgb01[y0:y1, x0:x1]
            x = torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1)[None].to(self.device)
            prob, maps = self._forward(normalise_tile(x), tta, attention)
            weight = gaussian_weight(y1 - y0, x1 - x0)
            prob_acc[y0:y1, x0:x1] += prob[0, 0].cpu().numpy() * weight
            weight_acc[y0:y1, x0:x1] += weight
            for acc, m in zip(att_acc, maps):
                acc[y0:y1, x0:x1] += m[0, 0].cpu().numpy() * weight
            tick()
        return prob_acc / weight_acc, [a / weight_acc for a in att_acc]

    def _predict_planes(self, slices, mode, tile_size, overlap, tta, attention, tick, should_stop):
        probs, atts = [], []
        for plane in slices:
            if should_stop is not None and should_stop():
                raise PredictionCancelled()
            rgb01 = to_rgb(plane).astype(np.float32, copy=False)
            if mode == "resize":
                prob, maps = self._predict_resize(rgb01, tta, attention)
                tick()
            else:
                prob, maps = self._predict_tiled(rgb01, tile_size, overlap, tta, attention, tick)
            probs.append(prob.astype(np.float32, copy=False))
            atts.append(maps)
        return probs, atts

    def count_steps(self, shape: tuple[int, ...], is_stack: bool, mode: str, tile: int, overlap: float) -> int:
        slices = shape[0] if is_stack else 1
        if mode == "resize":
            return slices
        height, width = (shape[1:3] if is_stack else shape[:2])
        return slices * len(tile_boxes(height, width, max(tile, MIN_SIDE), overlap))

    def predict(
        self,
        image: np.ndarray,
        threshold: Optional[float] = None,
        mode: Optional[str] = None,
        tile_size: int = 512,
        overlap: float = 0.25,
        tta: bool = False,
        return_attention: bool = False,
        rgb: Optional[bool] = None,
        progress: Optional[ProgressFn] = None,
        should_stop: Optional[StopFn] = None,
        threads: Optional[int] = None,
    ) -> Prediction:
        """Segment one image or a stack (slice by slice).

        mode: ``resize`` or ``tile`` (default: the checkpoint's ``inference_mode``).
        progress(done, total) is called after each slice/tile; ``should_stop()`` is polled between them
        and raises :class:`PredictionCancelled`.
        threads: torch CPU threads for this call (default: the predictor's ``threads``); a pipeline running
        several images at once gives each its share of the cores.
        """
        started = time.perf_counter()
        # the settings left to the model: a caller that segments the image again (a new model put in use) must leave
        # them to that model too, not pin the old model's values
        model_defaults = [name for name, asked in (("threshold", threshold), ("mode", mode)) if asked is None]
        mode = mode or self.config.inference_mode
        if mode not in ("resize", "tile"):
            raise ValueError(f"mode must be 'resize' or 'tile', not {mode!r}.")
        threshold = self._check_threshold(threshold)
        if return_attention and self.config.arch != DEFAULT_ARCH:
            # the network's own refusal spoke to Python callers ("call it with return_attention=False") in the widget
            raise ValueError(f"This model is a {network_name(self.config.arch)} (a baseline of the paper): only U-Net v2 has SDI "
                             "attention maps. Segment without them (untick 'compute SDI attention maps').")
        array, is_stack = split_image(image, rgb)
        height, width = (array.shape[1:3] if is_stack else array.shape[:2])
        if min(height, width) < MIN_SIDE and mode == "tile":
            raise ValueError(f"Image is {height}x{width}; tile mode needs both sides >= {MIN_SIDE} pixels.")
        scaled = to_unit_range(array)  # one rule for the whole array, so slices of a stack agree
        slices = scaled if is_stack else scaled[None]
        total = self.count_steps(array.shape, is_stack, mode, tile_size, overlap)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)
            if should_stop is not None and should_stop() and done < total:
                raise PredictionCancelled()

        try:
            with cpu_threads(self.threads if threads is None else threads):
                probs, atts = self._predict_planes(slices, mode, tile_size, overlap, tta, return_attention, tick,
                                                   should_stop)
        except torch.cuda.OutOfMemoryError as err:
            raise RuntimeError(
                f"The GPU ran out of memory ({err}). Use tile mode with a smaller tile size, or device='cpu'."
            ) from err
        prediction = self._assemble(probs, atts, is_stack, threshold, mode, tta, tile_size, return_attention)
        prediction.info["model_defaults"] = model_defaults
        prediction.info["seconds"] = time.perf_counter() - started  # the model's time on it (no reading, no writing)
        return prediction

    def _assemble(self, probs, atts, is_stack, threshold, mode, tta, tile_size, return_attention) -> Prediction:
        """The result of one image (or stack) from its per-plane probabilities and attention maps."""
        probability = np.stack(probs) if is_stack else probs[0]
        attention = None
        if return_attention:
            attention = {}
            for level, stride in enumerate((4, 8, 16, 32), start=1):
                maps = [a[level - 1] for a in atts]
                attention[attention_layer_name(level, stride)] = (np.stack(maps) if is_stack else maps[0]).astype(np.float32)
        mask = np.greater_equal(probability, threshold).view(np.uint8)  # bool -> 0/1 bytes, no copy
        return Prediction(
            probability=np.clip(probability, 0, 1, out=probability),  # a fresh array of ours: clip in place
            mask=mask,
            attention=attention,
            model_version=self.config.version,
            mode=mode,
            info={"threshold": threshold, "tta": tta, "tile_size": tile_size if mode == "tile" else None,
                  "model": self.description},
        )
