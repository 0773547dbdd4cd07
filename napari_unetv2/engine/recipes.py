"""Training recipes: YAML files in ``training/recipes`` loaded into typed, validated config objects."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml


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
        checks = [
            (self.optimizer in {"adam", "adamw", "sgd"}, f"optimizer must be adam, adamw or sgd, not {self.optimizer!r}"),
            (self.schedule in {"poly", "constant"}, f"schedule must be poly or constant, not {self.schedule!r}"),
            (self.loss in {"structure", "ce_dice"}, f"loss must be structure or ce_dice, not {self.loss!r}"),
            (self.normalization in {"encoder", "zscore"}, f"normalization must be encoder or zscore, not {self.normalization!r}"),
            (self.train_parts in {"all", "sdi-decoder"}, f"train_parts must be all or sdi-decoder, not {self.train_parts!r}"),
            (len(self.input_size) == 2 and min(self.input_size) >= 32, f"input_size must be two sides >= 32, not {self.input_size}"),
            (1 <= len(self.deep_supervision) <= 4 and sum(self.deep_supervision) > 0,
             "deep_supervision needs 1-4 weights with a positive sum"),
            (self.batch_size >= 1 and self.epochs >= 1 and self.lr > 0, "batch_size, epochs and lr must be positive"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
        ]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError(f"Recipe {self.name!r} is not valid: " + "; ".join(errors))
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
        augment = data.pop("augment", {}) or {}
        if isinstance(augment, dict):
            unknown_aug = sorted(set(augment) - {f.name for f in dataclasses.fields(AugmentConfig)})
            if unknown_aug:
                raise ValueError(f"Unknown augment fields: {unknown_aug}")
            augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()})
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
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
    return key.strip(), yaml.safe_load(raw)
