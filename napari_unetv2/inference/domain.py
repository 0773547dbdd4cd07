"""Does an image look like what a bundled model was trained on? A colour signature against each bundled model's
domain card, for one hint: the polyp model run on a dermoscopy image gave Dice 0.07 (and nothing at all on 4 of 6
PH2 images) with no word that the bundled skin model was one choice away (trial of session 32).

The signature is the image's per-channel mean and standard deviation at 64x64 (6 numbers); a card holds their
mean and covariance over the model's training images and the 99th percentile of those images' own Mahalanobis
distances (``training/domain_cards.py`` writes ``weights/domains.json``). An image is said to look like another
bundled model's images when it lies within that model's limit and a Gaussian of each card makes it at least e^5
(about 150) times likelier under the other model's images than under those of the model that ran. Results on
held-out images are in the README (``training/domain_cards.py --check``). A hint only: nothing is switched. The
bundled models' own versions carry a card, and a version fine-tuned from one of them is judged by its root's card
and said to be fine-tuned (after the first round of retraining, dermoscopy images went through the fine-tuned
polyp model with no word, and an automatic round trained it on them: clinician trial of session 39).

Qt-free and torch-free: the widgets call it in their workers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from .preprocess import to_rgb, to_unit_range

CARDS_FILE = Path(__file__).resolve().parent.parent / "weights" / "domains.json"
SIDE = 64  # the signature's resolution: colour statistics, not detail
LOG_ODDS = 5.0  # how much likelier under the other model's images (log), before the hint is given


@dataclass(frozen=True)
class DomainCard:
    name: str  # the bundled model's name ("polyp", "skin")
    images: str  # what it was trained on, as said to a user: "colonoscopy frames (PolypGen)"
    mean: np.ndarray  # (6,)
    precision: np.ndarray  # (6, 6): the inverse covariance
    log_det: float  # the covariance's log determinant
    limit: float  # the 99th percentile of the training images' distances

    def distance(self, signature: np.ndarray) -> float:
        d = np.asarray(signature, np.float64) - self.mean
        return float(np.sqrt(max(d @ self.precision @ d, 0.0)))

    def log_density(self, signature: np.ndarray) -> float:
        """The card's Gaussian log density, up to the constant every card shares."""
        return -0.5 * (self.distance(signature) ** 2 + self.log_det)


def colour_signature(image: np.ndarray) -> np.ndarray:
    """Per-channel mean and standard deviation of a 2-D image (grey or colour) in [0, 1], at SIDE x SIDE."""
    image = np.asarray(image)
    # every n-th pixel of a large image (a 4096x4096 frame: no 200 MB float copy for 4096 numbers of colour); the
    # cards' images (at most 765 px) are read whole
    step = max(1, max(image.shape[:2]) // 1024)
    rgb = to_rgb(to_unit_range(image[::step, ::step]))
    h, w = rgb.shape[:2]
    if h < SIDE or w < SIDE:  # a small image: its pixels repeated up to the grid
        rgb = rgb[np.arange(SIDE) * h // SIDE][:, np.arange(SIDE) * w // SIDE]
        h, w = SIDE, SIDE
    rows, cols = np.arange(SIDE) * h // SIDE, np.arange(SIDE) * w // SIDE
    # block means (an area resize): sums over the grid's cells divided by their pixel counts
    sums = np.add.reduceat(np.add.reduceat(rgb, rows, axis=0, dtype=np.float64), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))[..., None]
    cells = (sums / counts).reshape(-1, 3)
    return np.concatenate([cells.mean(0), cells.std(0)])


@lru_cache(maxsize=1)
def domain_cards(path: Path = CARDS_FILE) -> dict[str, DomainCard]:
    """{bundled model name: its card}; {} when no cards are installed (nothing is hinted then)."""
    try:
        data = json.loads(Path(path).read_text())
        cards = {}
        for name, card in data["cards"].items():
            cov = np.asarray(card["cov"], np.float64)
            cards[name] = DomainCard(name, str(card["images"]), np.asarray(card["mean"], np.float64), np.linalg.inv(cov),
                                     float(np.linalg.slogdet(cov)[1]), float(card["limit"]))
        return cards
    except (OSError, ValueError, KeyError, TypeError, np.linalg.LinAlgError):
        return {}


def line_root(model_version: Optional[str], checkpoint: Optional[Path] = None) -> Optional[str]:
    """The bundled model (``polyp``, ``skin``) ``model_version`` is, or was fine-tuned from (as far as the checkpoint's
    model store tells); None when not known."""
    from ..checkpoints.lines import bundled_versions, lines_around

    name = bundled_versions().get(model_version or "")
    if name is not None or checkpoint is None:
        return name
    try:
        return lines_around(Path(checkpoint)).bundled_root(model_version)
    except (OSError, ValueError):
        return None


def better_bundled_model(image: np.ndarray, model_version: Optional[str], checkpoint: Optional[Path] = None
                         ) -> Optional[tuple[DomainCard, DomainCard]]:
    """(the card of the bundled model that ran, or whose line ran, the card of another bundled model whose images
    ``image`` looks like) when the image lies within the other's limit and is at least e^LOG_ODDS times likelier
    there; else None. ``checkpoint``: the model's file, to find the bundled model a fine-tuned version descends from.
    ``image``: one 2-D image (a stack is not judged)."""
    cards = domain_cards()
    name = line_root(model_version, checkpoint)
    if name not in cards:
        return None
    try:
        signature = colour_signature(image)
    except ValueError:
        return None
    own = cards[name]
    others = [card for other, card in cards.items() if other != name and card.distance(signature) <= card.limit]
    best = max(others, key=lambda card: card.log_density(signature), default=None)
    if best is None or best.log_density(signature) - own.log_density(signature) < LOG_ODDS:
        return None
    return own, best


def domain_advice(image: np.ndarray, rgb: Optional[bool], model_version: Optional[str],
                  checkpoint: Optional[Path] = None) -> Optional[tuple[DomainCard, DomainCard]]:
    """:func:`better_bundled_model` of one 2-D image, grey or colour (None for a stack: not judged)."""
    array = np.asarray(image)
    if array.ndim > 3 or (array.ndim == 3 and (rgb is False or array.shape[-1] not in (1, 3, 4))):
        return None
    return better_bundled_model(array, model_version, checkpoint)


def domain_note(image: np.ndarray, rgb: Optional[bool], model_version: Optional[str], how_to_choose: str,
                checkpoint: Optional[Path] = None) -> str:
    """The hint said with a result ("" for none): which bundled model the image looks made for, and how to choose it
    (``how_to_choose`` names it as ``{model}``)."""
    return describe_advice(domain_advice(image, rgb, model_version, checkpoint), how_to_choose, model_version)


def describe_advice(found: Optional[tuple[DomainCard, DomainCard]], how_to_choose: str,
                    model_version: Optional[str] = None) -> str:
    """:func:`domain_note`'s words for a :func:`domain_advice` (``model_version``: the version that ran; one that is not
    a bundled model's own is said to be fine-tuned from it)."""
    from ..checkpoints.lines import bundled_versions

    if found is None:
        return ""
    own, other = found
    choose = how_to_choose.format(model=f"the bundled {other.name} model")
    if model_version and model_version not in bundled_versions():
        return (f"This image looks like the {other.images} the bundled {other.name} model was trained on, not like the "
                f"{own.images} of the bundled {own.name} model, which the model that segmented it ({model_version}) was "
                f"fine-tuned from: unless its corrections were images like this one, {choose}.")
    return (f"This image looks like the {other.images} the bundled {other.name} model was trained on, not like the "
            f"{own.images} of the bundled {own.name} model that segmented it: {choose}.")
