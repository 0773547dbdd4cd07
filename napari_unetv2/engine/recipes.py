"""Training recipes: YAML files in ``training/recipes`` loaded into typed, validated config objects."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ..validation import CHANNELS, IMAGE_SIDE, between, each, one_of, optional, problems, raise_if_problems


@dataclass
class AugmentConfig:
    hflip: bool = True
    vflip: bool = True
    rot90: bool = False
    rotate_degrees: float = 0.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    color_jitter: float = 0.0


@dataclass
class Recipe:
    """One training recipe. Every field can be overridden (CLI: ``--set field=value``)."""

    name: str = "custom"
    arch: str = "unetv2"  # unetv2 | unet | unetpp (the paper's baselines on the same encoder)
    encoder: str = "pvt_v2_b2"
    channels: int = 32
    pretrained: Union[bool, str] = True
    input_size: tuple[int, int] = (352, 352)
    batch_size: int = 16
    epochs: int = 300
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "poly"  # poly | constant
    poly_power: float = 0.9
    loss: str = "structure"  # structure | ce_dice
    dice_weight: float = 1.0
    deep_supervision: tuple[float, ...] = (8, 4, 2, 1)
    multiscale: tuple[float, ...] = (1.0,)
    step_per_scale: bool = True
    grad_clamp: Optional[float] = None  # element-wise clamp of gradients (authors' polyp script)
    grad_norm_clip: Optional[float] = None
    normalization: str = "encoder"  # encoder (the encoder's ImageNet mean/std) | zscore (per image)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    val_fraction: float = 0.1
    train_parts: str = "all"  # all | sdi-decoder
    amp: bool = True  # autocast on CUDA only
    threshold: float = 0.5

    def validate(self) -> "Recipe":
        """Types and ranges of every field (one :class:`~napari_unetv2.validation.ConfigError` listing all
        problems), checked before any model or data is built."""
        if not isinstance(self.augment, AugmentConfig):
            found = [f"augment must be a mapping of augmentation fields, not {self.augment!r}"]
        else:
            found = problems(self.augment, AUGMENT_RULES, prefix="augment.")
        found += problems(self, RECIPE_RULES)
        if not found and self.train_parts == "sdi-decoder" and self.arch != "unetv2":
            found.append(f"train_parts 'sdi-decoder' needs arch unetv2 (a {self.arch} has no SDI); use train_parts=all "
                         "(--train-parts all in unetv2 finetune, --set train_parts=all in train)")
        if not found and sum(self.deep_supervision) <= 0:
            found.append("deep_supervision needs a positive sum of weights")
        if not found and self.augment.scale_range[0] > self.augment.scale_range[1]:
            found.append(f"augment.scale_range must be (low, high) with low <= high, not {self.augment.scale_range}")
        raise_if_problems(found, f"Recipe {self.name!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown recipe fields: {unknown}. Known: {sorted(known)}")
        augment = data.pop("augment", {})
        augment = {} if augment is None else augment
        if isinstance(augment, dict):
            unknown_aug = sorted(set(augment) - {f.name for f in dataclasses.fields(AugmentConfig)})
            if unknown_aug:
                raise ValueError(f"Unknown augment fields: {unknown_aug}")
            augment = AugmentConfig(**{k: _as_tuple(v) for k, v in augment.items()})
        data = {k: _as_tuple(v) for k, v in data.items()}
        return cls(augment=augment, **data).validate()

    def with_overrides(self, overrides: dict[str, Any]) -> "Recipe":
        """A copy with fields replaced; dotted keys reach into ``augment`` (``augment.hflip=false``)."""
        data = self.to_dict()
        for key, value in overrides.items():
            target = data
            parts = key.split(".")
            for part in parts[:-1]:
                if part not in target or not isinstance(target[part], dict):
                    raise ValueError(f"Unknown recipe field {key!r}")
                target = target[part]
            if parts[-1] not in target:
                raise ValueError(f"Unknown recipe field {key!r}")
            target[parts[-1]] = value
        return Recipe.from_dict(data)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


def _known_encoder(name: str) -> bool:
    from ..model import ALIASES, ENCODERS

    return name in ENCODERS or name in ALIASES


AUGMENT_RULES = {
    "rotate_degrees": between(0, 180),
    "scale_range": each(between(0.1, 4.0), (2, 2)),
    "color_jitter": between(0, 1),
}
RECIPE_RULES = {
    "arch": one_of("unetv2", "unet", "unetpp"),
    "encoder": (_known_encoder, "a known encoder (pvt_v2_b0..b5, tf_efficientnet_lite0..2)"),
    "channels": CHANNELS,
    "pretrained": (lambda v: isinstance(v, bool) or bool(v.strip()), "true, false, 'timm', 'package' or a weight file"),
    "input_size": each(IMAGE_SIDE, (2, 2)),
    "batch_size": between(1, 4096),
    "epochs": between(1, 100_000),
    "optimizer": one_of("adam", "adamw", "sgd"),
    "lr": between(0, 10, low_open=True),
    "betas": each(between(0, 1, high_open=True), (2, 2)),
    "momentum": between(0, 1),
    "weight_decay": between(0, 10),
    "schedule": one_of("poly", "constant"),
    "poly_power": between(0, 10),
    "loss": one_of("structure", "ce_dice"),
    "dice_weight": between(0, 100),
    "deep_supervision": each(between(0, 1000), (1, 4)),
    "multiscale": each(between(0.1, 4.0), (1, 8)),
    "grad_clamp": optional(between(0, 1e6, low_open=True)),
    "grad_norm_clip": optional(between(0, 1e6, low_open=True)),
    "normalization": one_of("encoder", "zscore"),
    "seed": between(0, 2**63 - 1),
    "val_fraction": between(0, 1, high_open=True),
    "train_parts": one_of("all", "sdi-decoder"),
    "threshold": between(0, 1, low_open=True, high_open=True),
}


def recipe_dirs() -> list[Path]:
    """Packaged recipes (wheel) and the repository's ``training/recipes`` (checkout)."""
    here = Path(__file__).resolve().parent.parent
    return [d for d in (here / "recipes", here.parent / "training" / "recipes") if d.is_dir()]


def available_recipes() -> list[str]:
    return sorted({p.stem for d in recipe_dirs() for p in d.glob("*.yaml")})


def load_recipe(name_or_path: Union[str, Path], overrides: Optional[dict[str, Any]] = None) -> Recipe:
    """A recipe by name (``paper``, ``authors-polyp``, ``authors-isic``, ``cpu``, ``finetune``) or YAML path."""
    path = Path(name_or_path)
    if not path.is_file():
        candidates = [d / f"{name_or_path}.yaml" for d in recipe_dirs()]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise ValueError(f"Unknown recipe {str(name_or_path)!r}: not a file, and not one of {available_recipes()}.")
        path = found[0]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"Recipe file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"Recipe file {path} must hold a mapping of fields.")
    recipe = Recipe.from_dict(data)
    return recipe.with_overrides(overrides) if overrides else recipe


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ValueError(f"Override {text!r} must look like field=value.")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"Override {text!r}: the value is not valid YAML ({err}).") from err
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else value
        except ValueError:
            pass
    return key.strip(), value
