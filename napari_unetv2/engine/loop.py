"""The training loop shared by ``unetv2 train``, ``unetv2 finetune``, the retrain widget and scripts.

:func:`run_training` is a generator of :class:`TrainEvent`: the CLI drives it with a progress bar, the
napari widget runs it in a thread worker (each yield is a chance to report progress and to stop).
Closing the generator stops training; every file it writes is written atomically.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from ..checkpoints import ModelConfig, build_unetv2, load_checkpoint, read_tensors, save_checkpoint
from ..devices import resolve_device
from ..files import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
    interrupts_deferred,
    read_json,
    recover_directory,
    remove_stale_temporaries,
)
from ..inference import Predictor
from ..model import DEFAULT_ARCH, UNetV2, network_name
from .data import Pair, PairDataset
from .evaluate import evaluate_pairs
from .losses import deep_supervision_loss
from .pairs import pairs_fingerprint
from .recipes import Recipe

LAST = "last"
BEST = "best.safetensors"


# "start": once, before the first step (message: what is trained on what); "step": after each batch;
# "epoch": after each epoch (metrics: its record); "done": after the last epoch.
TrainEventKind = Literal["start", "step", "epoch", "done", "scoring"]  # scoring: a fine-tuning round between its scores


@dataclass
class TrainEvent:
    kind: TrainEventKind
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    loss: float = math.nan
    lr: float = math.nan
    eta_s: float = math.nan
    metrics: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class TrainJob:
    recipe: Recipe
    train_pairs: list[Pair]
    val_pairs: list[Pair]
    out_dir: Path
    device: str = "auto"
    resume: bool = False
    init_checkpoint: Optional[Path] = None  # start from these weights (fine-tuning) instead of the recipe's encoder
    data: dict = field(default_factory=dict)  # provenance written into the config
    command: str = ""
    name: str = ""
    parent: Optional[str] = None
    num_workers: int = 0
    # Resume state and curves every epoch; a short fine-tuning round in the GUI needs neither (and
    # rendering a PNG holds the GIL long enough to stall napari's event loop).
    resumable: bool = True
    # Which epoch becomes BEST: "best" = the best validation Dice (the lowest train loss without a
    # validation set), "last" = the end of the schedule (fine-tuning on a few corrections: no epoch is
    # selected on a handful of images; see engine/finetune.py).
    keep: Literal["best", "last"] = "best"
    # Also keep every epoch's weights as OUT/epochs/epoch-NNN.safetensors (for weight averaging across
    # epochs, training/average_checkpoints.py); off by default: one model file per epoch.
    save_epochs: bool = False
    # Whether the caller can resume a run (``unetv2 train --resume``): a fine-tuning round cannot, and its
    # refusal of a used folder must not advise an option it lacks.
    resume_offered: bool = True


EPOCHS = "epochs"


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun (which sets LOCAL_RANK and
    WORLD_SIZE), at any world size: one process under torchrun still trains through DDP."""
    launched = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launched and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def model_config_for(recipe: Recipe, model: UNetV2, job: TrainJob) -> ModelConfig:
    normalization = {"mode": "zscore"} if recipe.normalization == "zscore" else {"mode": "fixed", **model.normalization}
    return ModelConfig.for_model(
        model,
        normalization=normalization,
        input_size=tuple(recipe.input_size),
        inference_mode="resize",
        threshold=recipe.threshold,
        recipe=recipe.to_dict(),
        training={**job.data, "command": job.command},
        name=job.name or f"{recipe.arch}-{model.encoder_name}",
        parent=job.parent,
    )


def set_trainable_parts(model: UNetV2, parts: str) -> list[torch.nn.Parameter]:
    """``all`` or ``sdi-decoder`` (SDI + transposed convs + heads; encoder, attention, reduction frozen)."""
    frozen = [] if parts == "all" else [model.encoder, model.channel_attention, model.spatial_attention, model.reduce]
    for p in model.parameters():
        p.requires_grad_(True)
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def _frozen_to_eval(model: UNetV2, parts: str) -> None:
    """Keep BatchNorm statistics of frozen parts fixed while the rest trains."""
    if parts != "all":
        for module in (model.encoder, model.channel_attention, model.spatial_attention, model.reduce):
            module.eval()


def build_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=tuple(recipe.betas), weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, betas=tuple(recipe.betas), weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                           weight_decay=recipe.weight_decay)


def poly_factor(step: int, total: int, power: float) -> float:
    return max(0.0, 1.0 - step / max(1, total)) ** power


def _scaled_size(size: tuple[int, int], rate: float) -> tuple[int, int]:
    return tuple(max(32, int(round(s * rate / 32)) * 32) for s in size)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as safetensors-ready tensors plus a JSON-ready remainder (no pickle)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def write_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(epochs, [h.get("val_dice", math.nan) for h in history], "s-", color="tab:red", label="val Dice")
    ax2.set_ylabel("validation Dice", color="tab:red")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_logs(history: list[dict], out_dir: Path) -> None:
    if not history:
        return
    columns = list(history[-1].keys())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / "log.csv", text.getvalue())
    atomic_write_text(out_dir / "log.json", json.dumps(history, indent=1) + "\n")
    write_curves(history, out_dir / "curves.png")


def _save_last(out_dir: Path, model: UNetV2, config: ModelConfig, optimizer, scheduler, state: dict,
               loader_generator: torch.Generator) -> None:
    from safetensors.torch import save_file

    with atomic_directory(out_dir / LAST) as tmp:
        save_checkpoint(model, tmp / "model.safetensors", config)
        tensors, meta = _flatten_optimizer(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        # So a resumed run shuffles as the original would (with --workers 0; persistent workers draw their seeds
        # from this generator once per process, so a resumed run with workers shuffles and augments differently).
        tensors["rng.loader"] = loader_generator.get_state()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        full = {**state, "optimizer": meta, "scheduler": scheduler.state_dict()}
        (tmp / "state.json").write_text(json.dumps(full, indent=1, default=float))


@dataclass
class TrainingRun:
    """What the steps of one run share: built once by :func:`build_run`, advanced by the other steps."""

    job: TrainJob
    recipe: Recipe
    rank: int
    world: int
    device: torch.device
    out_dir: Path
    model: UNetV2
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    config: ModelConfig
    params: list
    dataset: PairDataset
    sampler: Optional[DistributedSampler]
    loader: DataLoader
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    use_amp: bool
    scales: tuple[float, ...]
    start_epoch: int = 0
    skipped_steps: int = 0  # float16 updates GradScaler skipped (inf/NaN gradients) in the current epoch
    history: list = field(default_factory=list)
    best: float = -math.inf  # the score is -train_loss when there is no validation set
    # the training and validation data by count and file names (pairs_fingerprint): recorded in last/, compared on resume
    data: dict = field(default_factory=dict)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)


def _initial_model(job: TrainJob, recipe: Recipe) -> tuple[UNetV2, Recipe, Optional[ModelConfig]]:
    """The starting weights: a checkpoint (fine-tuning) or the recipe's encoder (ImageNet or random)."""
    if job.init_checkpoint is None:
        # A resumed run's weights come from OUT/last: the encoder's ImageNet weights are not fetched (a --resume of a
        # `paper` run tried to download them, five times, before failing offline; trial of session 28).
        model = build_unetv2(recipe.encoder, channels=recipe.channels, pretrained=recipe.pretrained and not job.resume,
                             arch=recipe.arch)
        return model, recipe, None
    model, parent_config = load_checkpoint(job.init_checkpoint)
    job.parent = job.parent or parent_config.version
    recipe = recipe.with_overrides({"arch": parent_config.arch, "encoder": parent_config.encoder,
                                    "channels": parent_config.channels})
    return model, recipe, parent_config


def claim_output_folder(job: TrainJob) -> None:
    """The output folder must be new (or empty), or be the run being resumed; and it never holds the
    checkpoint being fine-tuned. Otherwise ValueError, before anything is written: a run never replaces
    another run's best/last/logs nor its own starting model."""
    out_dir = Path(job.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"The output {out_dir} is a file, not a folder.")
    if job.init_checkpoint is not None and Path(job.init_checkpoint).resolve().parent == out_dir.resolve():
        raise ValueError(f"The output folder {out_dir} holds the checkpoint being fine-tuned "
                         f"({Path(job.init_checkpoint).name}); choose a new folder so the starting model is kept.")
    if job.resume:
        return
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not job.resume_offered:
            advice = "choose a new (or empty) folder"
        elif recover_directory(out_dir / LAST) is not None:
            advice = "pass --resume to continue that run, or choose a new folder"
        else:  # --resume would only say there is nothing to resume (verification of session 28: each pointed to the other)
            advice = f"it holds no resumable run (no {LAST}/: stopped in its first epoch?), so choose a new folder" + (
                f"; {out_dir / BEST} can start it (--init)" if (out_dir / BEST).is_file() else "")
        raise ValueError(f"The output folder {out_dir} is not empty (an earlier run?); {advice}. Nothing was changed.")


def build_run(job: TrainJob) -> TrainingRun:
    """Step 1: device, seeds, model, data loader, optimiser, schedule and scaler."""
    recipe = job.recipe.validate()
    rank, world = _distributed()
    device = resolve_device(job.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)  # each rank's current device (the loader pins memory for it)
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)
    out_dir = Path(job.out_dir)
    if rank == 0:
        claim_output_folder(job)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir)

    model, recipe, parent_config = _initial_model(job, recipe)
    config = model_config_for(recipe, model, job)
    if parent_config is not None:
        config.normalization = parent_config.normalization
    params = set_trainable_parts(model, recipe.train_parts)
    model.to(device)

    dataset = PairDataset(job.train_pairs, recipe.input_size, config.normalization, recipe.augment, recipe.seed)
    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=recipe.seed) if world > 1 else None
    generator = torch.Generator().manual_seed(recipe.seed)
    loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=job.num_workers, drop_last=False, generator=generator,
                        # Workers that live across epochs keep their decoded-image caches (PairDataset).
                        persistent_workers=job.num_workers > 0, pin_memory=device.type == "cuda")
    scales = tuple(recipe.multiscale) or (1.0,)
    updates_per_step = len(scales) if recipe.step_per_scale else 1
    total_updates = recipe.epochs * len(loader) * updates_per_step

    net = model
    if dist.is_initialized():
        unused = (recipe.train_parts != "all" or any(w == 0 for w in recipe.deep_supervision)
                  or len(recipe.deep_supervision) < 4)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)
    optimizer = build_optimizer(params, recipe)
    if recipe.schedule == "poly":
        def schedule(s):
            return poly_factor(s, total_updates, recipe.poly_power)
    else:
        def schedule(s):
            return 1.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    use_amp = recipe.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    return TrainingRun(job, recipe, rank, world, device, out_dir, model, net, config, params, dataset, sampler,
                       loader, generator, optimizer, scheduler, scaler, use_amp, scales,
                       data={"train": pairs_fingerprint(job.train_pairs), "val": pairs_fingerprint(job.val_pairs)})


def resume_run(run: TrainingRun) -> None:
    """Step 2 (``--resume``): weights, optimiser, schedule, random states and history from ``OUT/last``."""
    last = recover_directory(run.out_dir / LAST)
    if last is None:
        best = run.out_dir / BEST
        raise FileNotFoundError(f"--resume: no checkpoint to resume from in {run.out_dir / LAST} (a run stopped in its "
                                "first epoch has none): start a new run in a new folder"
                                + (f", from {best} with --init if you like." if best.is_file() else "."))
    state = _read_resume_state(last / "state.json")
    saved, saved_config = load_checkpoint(last / "model.safetensors")
    check_resume_plan(run, state, saved_config.name)  # before the run takes anything from it
    run.model.load_state_dict(saved.state_dict())
    # where the weights began (the model was built without fetching them again)
    run.model.encoder_weights = run.config.encoder_weights = saved_config.encoder_weights
    tensors = read_tensors(last / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("rng.torch"))
    if "rng.loader" in tensors:  # absent in checkpoints written before it was recorded
        run.generator.set_state(tensors.pop("rng.loader"))
    _restore_optimizer(run.optimizer, {k: v.to(run.device) for k, v in tensors.items()}, state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.start_epoch, run.history, run.best = state["epoch"], state["history"], state["best_val_dice"]
    run.config.parent = state.get("parent", run.config.parent)


def _flat(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume_plan(run: TrainingRun, state: dict, saved_name: str = "") -> None:
    """ValueError, before anything changes, when ``--resume`` is given another recipe, options or data than the run
    started with, or when the run has nothing left to do. Any command line was accepted: other data, input size and
    learning rate were mixed into one run silently, and the checkpoint recorded the new settings as the whole run's
    (trial of session 28). ``--epochs`` may grow when the learning rate is constant (the run goes on as it would
    have); under the poly schedule every step's rate depends on the planned length, so it may not change."""
    out, done = run.out_dir, state["epoch"]
    now = json.loads(json.dumps(run.recipe.to_dict(), default=float))
    saved = state.get("recipe") if isinstance(state.get("recipe"), dict) else {}
    differences = []
    flat_now, flat_saved = _flat(now), _flat(saved)
    for key in sorted(flat_saved):  # fields a later version added are not in older runs' records: not compared
        if key != "epochs" and flat_now.get(key) != flat_saved[key]:
            differences.append(f"{key} {flat_now.get(key)} (the run: {flat_saved[key]})")
    if saved_name and run.config.name != saved_name:  # best.json kept one name, last/ took the other
        differences.append(f"--name {run.config.name} (the run: {saved_name})")
    planned = saved.get("epochs", now["epochs"])
    if now["epochs"] != planned and now["schedule"] == "poly":
        differences.append(f"--epochs {now['epochs']} (the run: {planned}; its poly learning-rate schedule was "
                           f"planned over {planned} epochs)")
    data = state.get("data") if isinstance(state.get("data"), dict) else {}
    for key, what in (("train", "training"), ("val", "validation")):
        if key in data and data[key] != run.data[key]:
            n = run.data[key]["n"]
            other = "other files" if data[key].get("n") == n else f"the run: {data[key].get('n')} pairs"
            differences.append(f"the {what} data ({n} pairs; {other})")
    if differences:
        raise ValueError(f"--resume: this command differs from the run in {out}: {'; '.join(differences)}. A resumed "
                         "run goes on as it was planned: give its options again, or start a new run from its weights "
                         f"(--init {out / LAST / 'model.safetensors'}). Nothing was changed.")
    if now["epochs"] <= done:
        raise ValueError(f"--resume: the run in {out} has trained {done} epoch(s) and --epochs is {now['epochs']}: "
                         f"nothing to resume. To train on, start a new run from its weights (--init {out / BEST})"
                         + (", or resume with a larger --epochs (its learning rate is constant)"
                            if now["schedule"] != "poly" else "") + ". Nothing was changed.")


def _read_resume_state(path: Path) -> dict:
    """``OUT/last/state.json`` with its fields checked, so a damaged one stops ``--resume`` with one line
    before any training (not a KeyError now, or an AttributeError an epoch later)."""
    try:
        state = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--resume: {path} is unreadable ({err}); nothing was changed.") from err
    kinds = {"epoch": int, "history": list, "optimizer": dict, "scheduler": dict, "best_val_dice": (int, float, type(None))}
    wrong = [name for name, kind in kinds.items()
             if not isinstance(state, dict) or name not in state or not isinstance(state[name], kind)
             or isinstance(state[name], bool)]
    if wrong:
        raise ValueError(f"--resume: {path} is damaged ({', '.join(wrong)} missing or of the wrong type); "
                         "nothing was changed. Start a new run, or restore the folder from a copy.")
    return state


def _apply_update(run: TrainingRun) -> None:
    """Unscale, clamp or clip the gradients as the recipe says, then step optimiser, scaler and schedule."""
    recipe = run.recipe
    run.scaler.unscale_(run.optimizer)
    if recipe.grad_clamp is not None:
        for p in run.params:
            if p.grad is not None:
                p.grad.data.clamp_(-recipe.grad_clamp, recipe.grad_clamp)
    if recipe.grad_norm_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.params, recipe.grad_norm_clip)
    scale = run.scaler.get_scale() if run.use_amp else None
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.use_amp and run.scaler.get_scale() < scale:
        # GradScaler lowered its scale: the gradients overflowed in float16 and no update was made. The schedule
        # then waits too, so that a short run (a retrain round of a few dozen steps) keeps its whole schedule.
        run.skipped_steps += 1
        return
    run.scheduler.step()


def optimizer_step(run: TrainingRun, images: torch.Tensor, masks: torch.Tensor) -> float:
    """Step 3: one batch, at every scale of the recipe (the authors' multi-scale training updates once per
    scale when ``step_per_scale``, else once after all scales); returns the mean loss."""
    recipe = run.recipe
    images, masks = images.to(run.device, non_blocking=True), masks.to(run.device, non_blocking=True)
    losses = []
    if not recipe.step_per_scale:
        run.optimizer.zero_grad(set_to_none=True)
    for rate in run.scales:
        if recipe.step_per_scale:
            run.optimizer.zero_grad(set_to_none=True)
        x, m = images, masks
        if rate != 1.0:
            size = _scaled_size(tuple(recipe.input_size), rate)
            x = F.interpolate(images, size=size, mode="bilinear", align_corners=True)
            m = (F.interpolate(masks, size=size, mode="bilinear", align_corners=True) >= 0.5).float()
        with torch.autocast("cuda", dtype=torch.float16) if run.use_amp else contextlib.nullcontext():
            out = run.net(x)
            loss = deep_supervision_loss(out.all_logits, m, recipe.deep_supervision, recipe.loss, recipe.dice_weight)
        run.scaler.scale(loss).backward()
        losses.append(float(loss.detach()))
        if recipe.step_per_scale or rate == run.scales[-1]:
            _apply_update(run)
    return float(np.mean(losses))


def end_of_epoch(run: TrainingRun, epoch: int, losses: list[float], seconds: float) -> dict:
    """Step 4: validate, keep the best checkpoint, write ``last/`` and the logs; returns the epoch's record."""
    job = run.job
    record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": run.optimizer.param_groups[0]["lr"],
              "steps": run.steps_per_epoch, "world_size": run.world, "seconds": round(seconds, 2)}
    if run.use_amp:
        record["skipped_steps"] = run.skipped_steps
        run.skipped_steps = 0
    if run.rank == 0:
        if job.val_pairs:
            run.model.eval()
            scores = evaluate_pairs(Predictor(model=run.model, config=run.config, device=str(run.device)),
                                    job.val_pairs)
            record.update({f"val_{k}": scores[k] for k in ("dice", "iou", "mae", "hd95")})
        run.history.append(record)
        score = record.get("val_dice", -record["train_loss"])
        if job.keep == "last":
            keep = epoch == run.recipe.epochs
            selected_on = "last epoch of the fixed schedule (no selection)"
        else:
            keep = score > run.best
            selected_on = "validation" if job.val_pairs else "train loss (no validation set)"
        # One epoch's files as a set: a Ctrl-C after best/ and before last/ left a run that neither --resume nor a
        # new run into its folder would take (verification of session 28). A second Ctrl-C goes through at once.
        with interrupts_deferred():
            if keep:
                run.best = max(run.best, score)
                run.config.metrics = {"selected_on": selected_on,
                                      "epoch": epoch, **{k: v for k, v in record.items() if k.startswith("val_")}}
                run.config.training = {**run.config.training, "epochs_trained": epoch}
                save_checkpoint(run.model, run.out_dir / BEST, run.config)
            if job.save_epochs:
                save_checkpoint(run.model, run.out_dir / EPOCHS / f"epoch-{epoch:03d}.safetensors", run.config)
            if job.resumable:
                _save_last(run.out_dir, run.model, run.config, run.optimizer, run.scheduler,
                           {"epoch": epoch, "history": run.history, "best_val_dice": run.best,
                            "parent": run.config.parent, "recipe": run.recipe.to_dict(), "data": run.data},
                           run.generator)
                write_logs(run.history, run.out_dir)
    if run.world > 1:
        dist.barrier()
    return record


def _starting_weights(job: TrainJob, run: TrainingRun) -> str:
    if job.resume:
        return (f"resuming {run.out_dir} after epoch {run.start_epoch} of {run.recipe.epochs} (weights, optimiser, "
                f"schedule and random state from {run.out_dir / LAST})")
    if job.init_checkpoint is None:
        return f"encoder weights: {run.model.encoder_weights}"
    # the network comes from the checkpoint: a U-Net given to --init trains a U-Net, which the line now says
    network = "" if run.recipe.arch == DEFAULT_ARCH else f"; network: {network_name(run.recipe.arch)}"
    return (f"starting weights: checkpoint {job.parent} ({Path(job.init_checkpoint).name}; its encoder began "
            f"from {run.model.encoder_weights}){network}")


def run_training(job: TrainJob) -> Iterator[TrainEvent]:
    """Train as ``job`` says, yielding a "start" event, a "step" event per batch, an "epoch" event per
    epoch and a final "done" event."""
    out_dir = Path(job.out_dir)
    # the folders this run would create (--out a/b/c with none of them there): removed again, when empty, on a failure
    made_here = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        run = build_run(job)
        try:
            yield from _train(job, run)
        finally:
            stop_loader_workers(run.loader)
    except BaseException:
        # A run that failed (an unreadable --init, a damaged image) or was cancelled before writing anything leaves no
        # empty output folder behind (trial of session 28); a folder that holds files, or was there before, stays.
        for folder in made_here:  # innermost first
            try:
                folder.rmdir()  # only ever an empty one
            except OSError:
                break
        raise


def stop_loader_workers(loader: DataLoader) -> None:
    """End a loader's persistent worker processes (``--workers``) now, with their image caches, rather than
    whenever the loader is garbage-collected (a traceback that keeps the training frame alive keeps them)."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None


def _train(job: TrainJob, run: TrainingRun) -> Iterator[TrainEvent]:
    if job.resume:
        resume_run(run)
    recipe, steps_per_epoch = run.recipe, run.steps_per_epoch
    yield TrainEvent("start", epoch=run.start_epoch, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch,
                     message=f"{len(run.dataset)} training pairs, {len(job.val_pairs)} validation pairs, "
                             f"{steps_per_epoch} steps per epoch on {run.device} (world size {run.world}"
                             f"{', DDP over ' + dist.get_backend() if dist.is_initialized() else ''}); "
                             f"{_starting_weights(job, run)}")
    started = time.time()
    done_steps, steps_to_do = 0, (recipe.epochs - run.start_epoch) * steps_per_epoch
    for epoch in range(run.start_epoch + 1, recipe.epochs + 1):
        if run.sampler is not None:
            run.sampler.set_epoch(epoch - 1)
        run.net.train()
        _frozen_to_eval(run.model, recipe.train_parts)
        epoch_start, losses = time.time(), []
        for step, (images, masks) in enumerate(run.loader, start=1):
            losses.append(optimizer_step(run, images, masks))
            done_steps += 1
            eta = (time.time() - started) / done_steps * (steps_to_do - done_steps)
            yield TrainEvent("step", epoch=epoch, epochs=recipe.epochs, step=step, steps_per_epoch=steps_per_epoch,
                             loss=losses[-1], lr=run.optimizer.param_groups[0]["lr"], eta_s=eta)
        record = end_of_epoch(run, epoch, losses, time.time() - epoch_start)
        yield TrainEvent("epoch", epoch=epoch, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch,
                         loss=record["train_loss"], metrics=record)
    yield TrainEvent("done", epoch=recipe.epochs, epochs=recipe.epochs, metrics={"best_val_dice": run.best},
                     message=f"best checkpoint: {run.out_dir / BEST}")
