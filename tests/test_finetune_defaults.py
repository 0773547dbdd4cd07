"""Issue 10: the fine-tuning defaults, one code path for CLI / retrain routine / benchmark, prospective
scores, the adoption rule, continuous rounds and the automatic-retrain policy (all Qt-free)."""
import inspect
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, make_synthetic_pairs

from napari_unetv2._sample_data import SAMPLES, load_sample
from napari_unetv2.checkpoints import ModelStore, read_config
from napari_unetv2.cli import main
from napari_unetv2.corrections import CorrectionSet
from napari_unetv2.corrections.adoption import should_adopt
from napari_unetv2.corrections.auto_retrain import AutoRetrainPolicy
from napari_unetv2.corrections.prospective import score_of, version_scores
from napari_unetv2.corrections.retrain import retrain_events
from napari_unetv2.engine import finetune
from napari_unetv2.engine.intervals import mean_interval
from napari_unetv2.engine.metrics import dice_iou_mae
from napari_unetv2.engine.pairs import Pair, find_pairs


def fake_pairs(n):
    return [Pair(Path(f"images/{i:03d}.png"), Path(f"masks/{i:03d}.png")) for i in range(n)]


def run(events):
    while True:
        try:
            next(events)
        except StopIteration as finished:
            return finished.value


# ---- defaults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3, 5, 10, 30, 47])
def test_few_corrections_all_train_and_none_is_held_out(n):
    train, held_out = finetune.plan_pairs(fake_pairs(n), None, seed=0)
    assert held_out == [] and sorted(train, key=str) == sorted(fake_pairs(n), key=str)


def test_a_held_out_part_only_when_it_holds_enough_images():
    train, held_out = finetune.plan_pairs(fake_pairs(60), None, seed=0)
    assert len(held_out) == 12 >= finetune.MIN_HELD_OUT and len(train) == 48
    assert not set(train) & set(held_out)


def test_default_round_trains_on_every_correction_and_keeps_the_last_epoch(tmp_path, small_checkpoint):
    pairs = find_pairs(make_synthetic_pairs(tmp_path / "five", n=5)).pairs
    result = run(finetune.finetune_events(small_checkpoint, pairs, tmp_path / "out", epochs=2, device="cpu",
                                          resumable=False))
    config = read_config(result.checkpoint)
    assert result.held_out == [] and sorted(result.trained_on) == sorted(p.stem for p in pairs)
    assert config.training["trained_on"] == result.trained_on and config.training["epochs_trained"] == 2
    assert config.metrics["selected_on"].startswith("last epoch")
    # forgetting made visible: the parent's and the new model's scores on the original-domain samples
    reference = config.metrics["reference"]
    assert reference["parent"]["n"] == reference["new"]["n"] == 2
    assert set(reference["new"]["images"]) == {SAMPLES["polyp"], SAMPLES["kvasir"]}
    assert reference["new"]["dice_interval"][0] <= reference["new"]["dice"] <= reference["new"]["dice_interval"][1]


def test_a_sample_the_round_trained_on_is_left_out_of_the_original_domain_check(tmp_path, small_checkpoint):
    """A PolypGen frame among the corrections is also a sample image: it was scored as an original-domain check of a
    model trained on it (trial of session 28)."""
    from napari_unetv2._sample_data import sample_data_dir
    from napari_unetv2.engine.pairs import Pair

    pairs = find_pairs(make_synthetic_pairs(tmp_path / "four", n=4)).pairs
    root = sample_data_dir()
    sample = Pair(root / "images" / f"{SAMPLES['polyp']}.jpg", root / "masks" / f"{SAMPLES['polyp']}.png")
    result = run(finetune.finetune_events(small_checkpoint, pairs + [sample], tmp_path / "out", epochs=1, device="cpu",
                                          resumable=False))
    reference = read_config(result.checkpoint).metrics["reference"]
    assert set(reference["new"]["images"]) == set(reference["parent"]["images"]) == {SAMPLES["kvasir"]}
    assert "1 sample(s) left out: the round trained on them" in reference["set"]


# ---- one function, one set of defaults ---------------------------------------------------------------
class Called(Exception):
    pass


def record_calls(monkeypatch):
    """Replace the one fine-tuning function; record how each caller calls it (all arguments resolved)."""
    calls = []
    signature = inspect.signature(finetune.finetune_events)

    def recorder(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        raise Called

    monkeypatch.setattr(finetune, "finetune_events", recorder)
    return calls


# What a caller must pass (its data and where to write) or may pass without changing the training:
# the log line, and whether a resumable state is written each epoch (the CLI can --resume, a widget
# round is cancelled instead).
DATA_ONLY = {"checkpoint", "corrections", "out_dir", "command", "resumable"}


def test_cli_retrain_routine_and_benchmark_call_one_function_with_the_same_defaults(monkeypatch, tmp_path,
                                                                                   small_checkpoint):
    calls = record_calls(monkeypatch)
    data = make_synthetic_pairs(tmp_path / "pairs", n=4)
    with pytest.raises(Called):
        main(["finetune", "--checkpoint", str(small_checkpoint), "--data", str(data), "--out", str(tmp_path / "cli")])
    store = ModelStore(tmp_path / "models")
    store.use(store.add(small_checkpoint).version)
    cs = CorrectionSet(tmp_path / "corrections")
    image, gt, stem = load_sample("skin")
    cs.add(image, gt, source=stem)
    with pytest.raises(Called):
        next(retrain_events(store, cs))
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_correct_retrain as bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    monkeypatch.setattr(sys, "argv", ["bench", "--data", str(data), "--n-eval", "1", "--k", "1", "--draws", "1",
                                      "--checkpoint", str(small_checkpoint), "--threads", "1"])
    with pytest.raises(Called):
        bench.main()
    cli, routine, benchmark = ({k: v for k, v in c.items() if k not in DATA_ONLY} for c in calls)
    assert cli == routine == benchmark
    assert cli["train_parts"] is None and cli["epochs"] is None and cli["replay"] is None  # the recipe decides
    assert [len(c["corrections"]) for c in calls] == [4, 1, 1]


# ---- prospective scores ------------------------------------------------------------------------------
def test_prospective_score_is_recorded_when_a_correction_is_accepted(tmp_path):
    image, gt, stem = load_sample("polyp")
    shown = np.zeros_like(gt)
    shown[: gt.shape[0] // 2] = gt[: gt.shape[0] // 2]  # the model found the upper half
    entry = CorrectionSet(tmp_path).add(image, gt, source=stem, model_version="v1", predicted_mask=shown)
    dice, iou, _ = dice_iou_mae(shown > 0, gt > 0)
    assert entry.prospective_dice == pytest.approx(dice) and entry.prospective_iou == pytest.approx(iou)
    assert 0.0 < entry.prospective_dice < 1.0
    [again] = CorrectionSet(tmp_path).entries()  # persisted
    assert again.prospective_dice == entry.prospective_dice
    assert CorrectionSet(tmp_path / "b").add(image, gt, source=stem).prospective_dice is None  # no shown mask


def test_entries_written_before_the_prospective_fields_still_load(tmp_path):
    cs = CorrectionSet(tmp_path)
    image, gt, stem = load_sample("polyp")
    entry = cs.add(image, gt, source=stem, predicted_mask=gt)
    path = tmp_path / "provenance" / f"{entry.id}.json"
    old = json.loads(path.read_text())
    del old["prospective_dice"], old["prospective_iou"]
    path.write_text(json.dumps(old))
    [loaded] = cs.entries()
    assert loaded.id == entry.id and loaded.prospective_dice is None
    assert version_scores(cs) == {}


def test_prospective_scores_are_aggregated_per_version_with_an_interval(tmp_path):
    cs = CorrectionSet(tmp_path)
    image, gt, stem = load_sample("skin")
    rng = np.random.default_rng(0)
    for i in range(6):  # v1: masks with some pixels wrong; v2: one perfect mask
        shown = (gt > 0).astype(np.uint8)
        flipped = rng.random(gt.shape) < 0.05 * (i + 1)
        shown[flipped] = 1 - shown[flipped]
        cs.add(image, gt, source=f"{stem}-{i}", model_version="v1", predicted_mask=shown)
    cs.add(image, gt, source=f"{stem}-v2", model_version="v2", predicted_mask=gt)
    scores = version_scores(cs)
    assert list(scores) == ["v1", "v2"]
    v1 = scores["v1"]
    dice = [e.prospective_dice for e in cs.entries() if e.model_version == "v1"]
    assert v1.n == 6 and v1.dice.mean == pytest.approx(np.mean(dice))
    assert v1.dice.low < v1.dice.mean < v1.dice.high <= 1.0
    assert v1.describe() == f"v1: Dice {v1.dice.mean:.3f} [{v1.dice.low:.3f}, {v1.dice.high:.3f}] on 6 images"
    assert scores["v2"].describe() == "v2: Dice 1.000 on 1 image: no interval"  # one image is no evidence
    assert score_of(cs, "v3").n == 0 and "no prospective score" in score_of(cs, "v3").describe()


def test_t_interval_matches_the_textbook_and_stays_in_range():
    values = [0.6, 0.7, 0.8, 0.9]
    interval = mean_interval(values)
    half = 3.182446305284263 * np.std(values, ddof=1) / 2  # t(0.975, 3)
    assert interval.low == pytest.approx(0.75 - half) and interval.high == pytest.approx(min(1.0, 0.75 + half))
    assert mean_interval([0.99, 1.0]).high == 1.0 and mean_interval([0.5]).low is None
    # two unchanged masks accepted (Dice 1 each): a zero-width interval is not shown as if it were precise (session 27)
    assert mean_interval([1.0, 1.0]).describe() == "1.000 on 2 images, all the same: no interval"
    assert mean_interval([0.7, 0.7, 0.7]).describe() == "0.700 on 3 images, all the same: no interval"  # no rounding


# ---- adoption ----------------------------------------------------------------------------------------
def test_a_one_image_score_does_not_keep_a_worse_model():
    # The starting model scored 0.977 on the single held-out image and the new one 0.95: one image is no
    # evidence, the new version (trained on every correction) is used, and the reason says so.
    decision = should_adopt([0.977], [0.95])
    assert decision.adopt and "1 image" in decision.reason and "no evidence" in decision.reason
    assert should_adopt([0.2] * 3, [0.9] * 3).adopt  # nor does a handful decide in the other direction...
    assert "3 images" in should_adopt([0.2] * 3, [0.9] * 3).reason


def test_a_new_version_that_is_worse_on_enough_images_is_not_adopted_and_says_why():
    rng = np.random.default_rng(0)
    in_use = rng.uniform(0.7, 0.9, 12)
    worse = in_use - rng.uniform(0.1, 0.2, 12)
    decision = should_adopt(list(in_use), list(worse))
    assert not decision.adopt and "worse" in decision.reason and "12 held-out images" in decision.reason
    mixed = in_use + rng.normal(0, 0.05, 12)  # no clear difference: the new version is the default
    assert should_adopt(list(in_use), list(mixed)).adopt
    assert should_adopt([], []).adopt
    with pytest.raises(ValueError, match="Paired"):
        should_adopt([0.5], [0.5, 0.6])


# ---- continuous rounds and the automatic-retrain policy ----------------------------------------------
def add_correction(cs, key, version, suffix=""):
    image, gt, stem = load_sample(key)
    return cs.add(image, gt, source=stem + suffix, model_version=version, predicted_mask=np.zeros_like(gt))


def test_round_two_starts_from_the_version_in_use_and_trains_on_all_corrections(tmp_path, small_checkpoint):
    store = ModelStore(tmp_path / "models")
    start = store.add(small_checkpoint)
    store.use(start.version)
    cs = CorrectionSet(tmp_path / "corrections")
    policy = AutoRetrainPolicy(every_n=2)
    first = [add_correction(cs, "polyp", start.version)]
    assert not policy.due(cs, store.current_checkpoint())
    first.append(add_correction(cs, "skin", start.version))
    assert policy.due(cs, store.current_checkpoint())

    one = run(retrain_events(store, cs, epochs=1, device="cpu"))
    assert one.config.parent == start.version and sorted(one.result.trained_on) == sorted(e.id for e in first)
    assert one.adoption.adopt and one.config.metrics["adoption"]["adopt"]
    assert one.parent_prospective.n == 2 and one.config.metrics["parent_prospective"]["n"] == 2
    assert one.config.metrics["parent_prospective"]["dice"]["mean"] == pytest.approx(one.parent_prospective.dice.mean)
    store.use(one.config.version)
    assert not policy.due(cs, store.current_checkpoint())  # nothing new since the round

    second = add_correction(cs, "kvasir", one.config.version)
    assert policy.pending(cs, {e.id for e in first}) == 1 and not policy.due(cs, store.current_checkpoint())
    two = run(retrain_events(store, cs, epochs=1, device="cpu"))
    assert two.config.parent == one.config.version
    assert sorted(two.result.trained_on) == sorted([e.id for e in first] + [second.id])
    assert two.parent_prospective.version == one.config.version and two.parent_prospective.n == 1
    assert "1 image: no interval" in two.parent_prospective.describe()
    store.roll_back()  # back to the start: every correction is new to it again
    assert policy.due(cs, store.current_checkpoint())


def test_a_cancel_in_the_rounds_last_phase_keeps_the_new_version_out(tmp_path, small_checkpoint, monkeypatch):
    """The last phase (scoring the held-out and reference images) yields no event, so a Cancel pressed then was
    only seen after the new version was stored and returned, and the widget put it in use."""
    from types import SimpleNamespace

    from napari_unetv2.engine import finetune
    from napari_unetv2.widgets._rounds import adopt, round_job

    store = ModelStore(tmp_path / "models")
    start = store.add(small_checkpoint)
    store.use(start.version)
    cs = CorrectionSet(tmp_path / "corrections")
    add_correction(cs, "polyp", start.version)
    cancel, trained = threading.Event(), threading.Event()
    score = finetune._score

    def scoring(checkpoint, *args, **kwargs):  # the user presses Cancel while the trained model is scored
        if trained.is_set():
            cancel.set()
        return score(checkpoint, *args, **kwargs)

    monkeypatch.setattr(finetune, "_score", scoring)
    events = round_job(store, cs, cancel, epochs=1, device="cpu")()
    with pytest.raises(StopIteration) as finished:
        while True:
            event = next(events)
            if event.kind == "step" and event.epoch == event.epochs and event.step == event.steps_per_epoch:
                trained.set()
    assert cancel.is_set() and finished.value.value is None
    assert [c.version for c in store.versions()] == [start.version] and store.current == start.version
    assert not list((store.root / "runs").glob("round-*"))

    # a round that ends after the user moved the model in use (Roll back meanwhile) leaves their choice standing
    class Models:
        def __init__(self):
            self.used = []

        def version_id(self):
            return store.current

        def label(self, version=None):
            return str(version or store.current)

        def use(self, version):
            self.used.append(version)

    models = Models()
    outcome = SimpleNamespace(config=SimpleNamespace(parent="0123456789ab", version="fedcba987654"))
    said = adopt(models, outcome)
    assert models.used == [] and "not put in use" in said and "fedcba987654" in said
    assert adopt(models, SimpleNamespace(config=SimpleNamespace(parent=start.version, version="v2"))) is None
    assert models.used == ["v2"]


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="N >= 1"):
        AutoRetrainPolicy(every_n=0)


# ---- the CLI summary -----------------------------------------------------------------------------------
def test_finetune_cli_prints_figures_with_n_and_interval(tmp_path, small_checkpoint, capsys):
    cs = CorrectionSet(tmp_path / "set")
    version = read_config(small_checkpoint).version
    add_correction(cs, "skin", version)
    add_correction(cs, "skin", version, suffix="-again")
    out = tmp_path / "ft"
    assert main(["finetune", "--checkpoint", str(small_checkpoint), "--data", str(cs.root), "--out", str(out),
                 "--epochs", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "trained on 2 pairs (all of them" in printed
    assert f"{version}: Dice 0.000 on 2 images, all the same: no interval" in printed  # the shown masks were empty
    assert "original-domain samples, new model: Dice" in printed and "on 2 images" in printed
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["prospective"][version]["n"] == 2 and summary["reference"]["new"]["n"] == 2


def test_finetune_cli_survives_a_window_replacing_an_entry_while_it_trains(tmp_path, small_checkpoint, monkeypatch):
    """A cold review of session 25: `unetv2 finetune --data <correction set>` trained on the set's own files; a
    window re-accepting one of its images meanwhile (which replaces the entry and deletes its files) ended the run
    in 'No such file or directory'. It trains on its own links to the files, as a widget round does."""
    from napari_unetv2 import cli

    cs = CorrectionSet(tmp_path / "set")
    version = read_config(small_checkpoint).version
    first = add_correction(cs, "skin", version)
    add_correction(cs, "polyp", version)
    drive = cli.drive_training

    def replacing_meanwhile(events, desc):
        def replaced_after_the_start():
            started = next(events)
            cs.remove(first.id)  # what store_correction does to the earlier entry of a re-accepted image
            yield started
            return (yield from events)
        return drive(replaced_after_the_start(), desc)

    monkeypatch.setattr(cli, "drive_training", replacing_meanwhile)
    out = tmp_path / "ft"
    assert main(["finetune", "--checkpoint", str(small_checkpoint), "--data", str(cs.root), "--out", str(out),
                 "--epochs", "2", "--device", "cpu"]) == 0
    assert (out / "finetune.json").is_file()


def test_a_skin_lines_round_is_checked_on_the_dermoscopy_sample(tmp_path, small_checkpoint):
    """The trial of session 25: a round of the skin model recorded its 'original domain' check on the endoscopy
    samples, which says nothing of what the skin line forgets. The check follows the line the model descends from."""
    from napari_unetv2.checkpoints import bundled_checkpoint, load_checkpoint, save_checkpoint
    from napari_unetv2.engine.finetune import bundled_line

    model, config = load_checkpoint(small_checkpoint)
    config.parent = read_config(bundled_checkpoint("skin")).version
    save_checkpoint(model, tmp_path / "skin-round.safetensors", config)
    store = ModelStore(tmp_path / "models")
    store.use(store.add(tmp_path / "skin-round.safetensors").version)
    cs = CorrectionSet(tmp_path / "corrections")
    image, gt, stem = load_sample("skin")  # mirrored: the sample itself, trained on, would be no check (session 28)
    cs.add(np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(gt[:, ::-1]), source=stem, model_version=store.current,
           predicted_mask=np.zeros_like(gt))
    outcome = run(retrain_events(store, cs, epochs=1, device="cpu"))
    assert "dermoscopy" in outcome.result.reference["set"] and outcome.result.reference["new"]["n"] == 1
    assert bundled_line(store.path_of(outcome.config.version)) == "skin"  # a grandchild, through the store
    assert bundled_line(small_checkpoint) == "polyp" and bundled_line(bundled_checkpoint("skin")) == "skin"


def test_lines_leave_out_another_lines_corrections_in_the_policy_the_cli_and_a_damaged_ancestor_costs_nothing(
        tmp_path, small_checkpoint, capsys):
    """A cold review of session 25: (1) corrections of another line, which no round of the model in use takes, stayed
    'pending' for the automatic policy, so every accept started a round; (2) `unetv2 finetune` on a mixed set trained on
    both lines while the widgets did not; (3) an ancestor with a damaged model.json raised after training, costing
    the round."""
    from napari_unetv2.checkpoints import bundled_checkpoint, load_checkpoint, save_checkpoint
    from napari_unetv2.checkpoints.lines import ModelLines
    from napari_unetv2.engine.finetune import bundled_line

    store = ModelStore(tmp_path / "models")
    start = store.add(small_checkpoint)  # of the polyp line
    store.use(start.version)
    cs = CorrectionSet(tmp_path / "corrections")
    skin = read_config(bundled_checkpoint("skin")).version
    for n in range(3):
        add_correction(cs, "skin", skin, suffix=f"-{n}")
    policy, lines = AutoRetrainPolicy(every_n=2), ModelLines.known(store)
    assert policy.pending(cs, set()) == 3 and policy.pending(cs, set(), lines, start.version) == 0
    assert not policy.due(cs, store.current_checkpoint(), lines, start.version)

    ours = add_correction(cs, "polyp", start.version)
    out = tmp_path / "ft"
    assert main(["finetune", "--checkpoint", str(small_checkpoint), "--data", str(cs.root), "--out", str(out),
                 "--epochs", "1", "--device", "cpu"]) == 0
    assert "left out 3 correction(s)" in capsys.readouterr().out
    assert json.loads((out / "finetune.json").read_text())["trained_on"] == [ours.id]

    model, config = load_checkpoint(small_checkpoint)
    config.parent = start.version
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_checkpoint(model, tmp_path / "child.safetensors", config)
    child = store.add(tmp_path / "child.safetensors")
    assert bundled_line(store.path_of(child.version)) == "polyp"
    (store.root / "versions" / start.version / "model.json").write_text("{ damaged")
    assert bundled_line(store.path_of(child.version)) is None  # the chain is broken: unknown, not an error


def test_a_fine_tuned_versions_name_counts_generations():
    """Trial of session 30: each round added '-finetuned' (polyp-default-finetuned-finetuned-finetuned)."""
    from napari_unetv2.engine.finetune import finetuned_name

    assert finetuned_name("polyp-default") == "polyp-default-finetuned"
    assert finetuned_name("polyp-default-finetuned") == "polyp-default-finetuned-2"
    assert finetuned_name("polyp-default-finetuned-2") == "polyp-default-finetuned-3"
    assert finetuned_name("polyp-default-finetuned-finetuned-finetuned") == "polyp-default-finetuned-4"
