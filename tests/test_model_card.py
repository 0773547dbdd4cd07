"""The model card is generated, not typed: the committed card is exactly what training/write_model_card.py
writes from the committed logs, evaluations and bundled configs."""
from conftest import REPO, load_script

TRAINING = REPO / "training"


def load_writer():
    return load_script("training/write_model_card.py")


def test_committed_card_is_the_generated_one():
    generated = load_writer().card_text()
    committed = (TRAINING / "MODEL_CARD.md").read_text()
    assert generated == committed, "training/MODEL_CARD.md differs from its generator: run training/write_model_card.py"


def test_recipe_changes_name_what_a_later_stage_changed():
    writer = load_writer()
    stage1 = {"seed": 0, "augment": dict(writer.STAGE1_AUGMENT)}
    assert writer.recipe_changes(stage1) == ""
    stage2b = {"seed": 1, "augment": {**writer.STAGE1_AUGMENT, "scale_range": [0.75, 1.25], "rotate_degrees": 30.0}}
    assert writer.recipe_changes(stage2b) == ", seed 1, augmentation rotate_degrees 30.0, augmentation scale_range [0.75, 1.25]"
    # A tuple read back from a config compares equal to the list it was written as.
    assert writer.recipe_changes({"augment": {"scale_range": (0.9, 1.1)}}) == ""
    # The authors' multi-scale training (stage 2d) is a recipe key, not an augmentation one.
    assert writer.recipe_changes({"seed": 3, "multiscale": [0.75, 1.0, 1.25]}) == (
        ", seed 3, the authors' multi-scale training (rates 0.75, 1, 1.25, one update per rate)")
    assert writer.recipe_changes({"multiscale": (1.0,)}) == ""


def test_readme_quotes_the_bundled_models_evaluations():
    """The README's headline figures are the ones in training/card/ (written by `unetv2 evaluate --json`)."""
    import json
    import re

    readme = (TRAINING.parent / "README.md").read_text()
    polyp = json.loads((TRAINING / "card" / "val_metrics_cli.json").read_text())
    card = json.loads((TRAINING / "card" / "val_metrics.json").read_text())  # what the card's table shows
    assert [polyp[k] for k in ("n", "dice", "iou", "mae", "hd95")] == [card[k] for k in ("n", "dice", "iou", "mae", "hd95")]
    headline = re.search(r"\*\*Dice ([0-9.]+), IoU ([0-9.]+), MAE ([0-9.]+), HD95 ([0-9.]+) px\*\*", readme)
    assert headline, "the README's bundled-model paragraph lost its figures"
    assert headline.groups() == (f"{polyp['dice']:.4f}", f"{polyp['iou']:.4f}", f"{polyp['mae']:.4f}", f"{polyp['hd95']:.1f}")
    console = re.search(r"\nall +(\d+) +([0-9.]+) +([0-9.]+) +([0-9.]+) +([0-9.]+)\n", readme)
    assert console and console.groups() == (str(polyp["n"]), f"{polyp['dice']:.4f}", f"{polyp['iou']:.4f}",
                                            f"{polyp['mae']:.4f}", f"{polyp['hd95']:.2f}")
    skin = json.loads((TRAINING / "card" / "skin_test_metrics.json").read_text())
    assert f"**Dice {skin['dice']:.4f}, IoU {skin['iou']:.4f}**" in readme
    polyp_on_skin = json.loads((TRAINING / "card" / "polyp_model_on_skin_test.json").read_text())
    assert f"the polyp model scores Dice {polyp_on_skin['dice']:.4f}" in readme


def test_readme_quotes_the_gpu_run_as_it_came_back():
    """The GPU run's figures in the README are the evaluations and test output kept in training/card/gpu/."""
    import json
    import re

    readme = (TRAINING.parent / "README.md").read_text()
    gpu = TRAINING / "card" / "gpu"
    a, b = (json.loads((gpu / f"{run}-val.json").read_text())["dice"] for run in "ab")
    assert f"scored the multi-scale run {b:.4f} and the\n  single-scale run {a:.4f}" in readme
    autocast = float(re.search(r"max \|dp\| ([0-9.]+)", (gpu / "cuda_tests.txt").read_text()).group(1))
    assert f"max |dp| {autocast:.4f}" in readme


def test_readme_quotes_the_second_gpu_run_as_it_came_back():
    """The second GPU run's figures in the README (CUDA float32 against the CPU, the candidates' range on val)
    are those kept in training/card/gpu2/."""
    import json
    import re

    readme = (TRAINING.parent / "README.md").read_text()
    gpu2 = TRAINING / "card" / "gpu2"
    dp, differing = re.search(r"cuda float32 vs cpu: max \|dp\| ([0-9.]+), mask pixels differing ([0-9.]+)",
                              (gpu2 / "cuda_tests.txt").read_text()).groups()
    assert f"max |dp| {float(dp):.4f}, and\n  {float(differing) * 100:.3f}% of mask pixels differ" in readme
    scores = [json.loads(f.read_text())["dice"] for f in gpu2.glob("eval-*.json")]
    assert len(scores) == len(load_writer().GPU2_CANDIDATES)
    assert f"scored {min(scores):.4f} to {max(scores):.4f} on" in readme


def test_english_lists_read_as_english():
    """The card's generated sentences (selection rounds, stages alone) join one, two or more names properly."""
    writer = load_writer()
    assert writer.english_list([]) == ""
    assert writer.english_list(["third"]) == "third"
    assert writer.english_list(["third", "fourth"]) == "third and fourth"
    assert writer.english_list(["third", "fourth", "fifth"]) == "third, fourth and fifth"
