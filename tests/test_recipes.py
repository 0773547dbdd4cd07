import pytest

from napari_unetv2.engine.recipes import available_recipes, load_recipe, parse_override


def test_all_recipes_load():
    assert {"paper", "authors-polyp", "authors-isic", "cpu", "finetune"} <= set(available_recipes())
    for name in available_recipes():
        load_recipe(name)


def test_paper_recipe_matches_the_paper():
    r = load_recipe("paper")
    assert (r.optimizer, r.lr, tuple(r.betas), r.schedule, r.poly_power) == ("adam", 1e-3, (0.9, 0.999), "poly", 0.9)
    assert (r.epochs, r.channels, r.loss, tuple(r.input_size), r.encoder) == (300, 32, "structure", (352, 352), "pvt_v2_b2")


def test_authors_recipes():
    polyp = load_recipe("authors-polyp")
    assert (polyp.optimizer, polyp.lr, polyp.weight_decay, polyp.grad_clamp, polyp.epochs) == ("adamw", 1e-4, 1e-4, 0.5, 100)
    assert tuple(polyp.multiscale) == (0.75, 1.0, 1.25) and polyp.step_per_scale
    isic = load_recipe("authors-isic")
    assert (isic.optimizer, isic.momentum, isic.nesterov, isic.loss, isic.dice_weight) == ("sgd", 0.99, True, "ce_dice", 1.5)
    assert tuple(isic.deep_supervision) == (8, 4, 2, 1) and isic.normalization == "zscore"


def test_overrides_and_errors(tmp_path):
    r = load_recipe("cpu", dict([parse_override("epochs=3"), parse_override("augment.hflip=false"),
                                 parse_override("input_size=[64, 96]")]))
    assert r.epochs == 3 and r.augment.hflip is False and tuple(r.input_size) == (64, 96)
    with pytest.raises(ValueError, match="Unknown recipe field"):
        load_recipe("cpu", {"learning_rate": 1})
    with pytest.raises(ValueError, match="optimizer"):
        load_recipe("cpu", {"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="Unknown recipe"):
        load_recipe("no-such-recipe")
    custom = tmp_path / "mine.yaml"
    custom.write_text("name: mine\nencoder: pvt_v2_b0\nepochs: 2\n")
    assert load_recipe(custom).encoder == "pvt_v2_b0"
