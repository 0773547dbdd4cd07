import json
from pathlib import Path

import pytest
import torch

from napari_unetv2.checkpoints import (
    ModelConfig,
    UntrustedCheckpointError,
    WeightsMismatchError,
    load_checkpoint,
    read_config,
    save_checkpoint,
)
from napari_unetv2.model import UNetV2


def test_round_trip_is_bit_exact(tmp_path, tiny_model):
    config = ModelConfig.for_model(tiny_model, metrics={"dice": 0.5}, parent="abc", recipe={"name": "cpu"})
    saved = save_checkpoint(tiny_model, tmp_path / "m.safetensors", config)
    model, loaded = load_checkpoint(tmp_path / "m.safetensors")
    for (k, a), (k2, b) in zip(tiny_model.state_dict().items(), model.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b), k
    assert loaded.version == saved.version and len(loaded.version) == 12
    assert loaded.parent == "abc" and loaded.metrics == {"dice": 0.5} and loaded.encoder == "tf_efficientnet_lite0"
    assert loaded.normalization["mode"] == "fixed"
    data = json.loads((tmp_path / "m.json").read_text())
    for key in ("encoder", "channels", "num_classes", "normalization", "recipe", "version", "parent", "metrics"):
        assert key in data


def test_same_weights_same_version(tmp_path, tiny_model):
    a = save_checkpoint(tiny_model, tmp_path / "a.safetensors").version
    b = save_checkpoint(tiny_model, tmp_path / "b.safetensors").version
    assert a == b


def test_a_save_interrupted_between_its_two_files_is_refused_on_load(tmp_path, tiny_model, monkeypatch):
    import napari_unetv2.checkpoints.checkpoint as checkpoint

    path = tmp_path / "best.safetensors"
    first = save_checkpoint(tiny_model, path)
    with torch.no_grad():
        dict(tiny_model.named_parameters())["heads.0.weight"].add_(1.0)

    def disk_full(target, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(tiny_model, path)  # the new JSON is written, the new weights are not
    monkeypatch.undo()
    assert read_config(path).version != first.version
    with pytest.raises(ValueError, match=f"weights are version {first.version}"):
        load_checkpoint(path)


def test_ctrl_c_between_a_checkpoints_two_files_waits_for_both(tmp_path, tiny_model, monkeypatch, python_sigint):
    """Ctrl-C just after the JSON was written left a config describing other weights (or a config alone), and the CLI
    said nothing half-written was left (trial of session 28): the interrupt now comes once both files are written."""
    import os
    import signal

    import napari_unetv2.checkpoints.checkpoint as checkpoint

    path = tmp_path / "best.safetensors"
    save_checkpoint(tiny_model, path)
    with torch.no_grad():
        dict(tiny_model.named_parameters())["heads.0.weight"].add_(1.0)
    write_text = checkpoint.atomic_write_text

    def then_ctrl_c(target, text):
        write_text(target, text)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(checkpoint, "atomic_write_text", then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny_model, path)
    monkeypatch.undo()
    model, config = load_checkpoint(path)  # JSON and weights of the same save
    assert torch.equal(model.state_dict()["heads.0.weight"], tiny_model.state_dict()["heads.0.weight"])


def test_checkpoints_saved_before_the_version_was_in_the_weights_still_load(tmp_path, tiny_model):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "old.safetensors"
    saved = save_checkpoint(tiny_model, path)
    save_file(load_file(str(path)), str(path), metadata={"format": "pt"})  # as written before
    assert load_checkpoint(path)[1].version == saved.version


def test_half_precision_checkpoint_loads_as_float32(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "h.safetensors", half=True)
    model, _ = load_checkpoint(tmp_path / "h.safetensors")
    w = dict(model.named_parameters())["heads.0.weight"]
    assert w.dtype == torch.float32
    assert torch.allclose(w, dict(tiny_model.named_parameters())["heads.0.weight"], atol=1e-3)


def test_pickle_refused_unless_trusted(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    path = tmp_path / "m.pt"
    torch.save(tiny_model.state_dict(), path)
    with pytest.raises(UntrustedCheckpointError, match="trusted"):
        load_checkpoint(path)
    model, _ = load_checkpoint(path, trusted=True, config=read_config(tmp_path / "m.safetensors"))
    assert torch.equal(model.heads[0].weight, tiny_model.heads[0].weight)


def test_trusted_pickle_still_refuses_arbitrary_objects(tmp_path, tiny_model):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny_model.state_dict(), "thing": object()}, path)
    with pytest.raises(ValueError, match="objects other than tensors"):
        load_checkpoint(path, trusted=True, config=ModelConfig.for_model(tiny_model))


def test_wrong_architecture_names_the_mismatch(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    other = ModelConfig.for_model(UNetV2("tf_efficientnet_lite0", channels=32))
    expected = "59 shape differences: reduce.0.0.weight: file \\(16, 24, 1, 1\\) vs network \\(32, 24, 1, 1\\)"
    with pytest.raises(WeightsMismatchError, match=expected):
        load_checkpoint(tmp_path / "m.safetensors", config=other)
    pvt = ModelConfig.for_model(UNetV2("pvt_v2_b0", channels=16))
    with pytest.raises(WeightsMismatchError, match="missing keys: encoder.net.patch_embed.*288 unexpected keys: encoder.net.blocks"):
        load_checkpoint(tmp_path / "m.safetensors", config=pvt)


def test_missing_or_corrupt_files_give_clear_errors(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.safetensors")
    save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    (tmp_path / "m.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=".safetensors"):
        save_checkpoint(tiny_model, tmp_path / "m.bin")


def test_bundled_models_are_loaded_by_name(tmp_path, monkeypatch):
    from napari_unetv2.checkpoints import BUNDLED_MODELS, bundled_checkpoint, resolve_checkpoint
    from napari_unetv2.inference import Predictor

    assert resolve_checkpoint(None) == bundled_checkpoint("polyp")
    assert resolve_checkpoint("polyp") == bundled_checkpoint()
    assert Predictor("polyp", device="cpu").config.version == Predictor(None, device="cpu").config.version
    for name in BUNDLED_MODELS:  # every advertised name resolves to an installed, loadable model
        assert Predictor(name, device="cpu").config.name.startswith(name)
    with pytest.raises(ValueError, match="bundled models are"):
        bundled_checkpoint("liver")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "skin").write_bytes(b"")  # a file called like a bundled model is read as the file
    assert resolve_checkpoint("skin") == Path("skin")


def test_average_checkpoints_takes_the_mean_of_every_float_tensor_and_overwrites_nothing(tmp_path):
    """training/average_checkpoints.py (weight averaging of one network's checkpoints): the two bundled
    models are the same network, so their soup is each float tensor's weighted mean."""
    from conftest import load_script

    from napari_unetv2.checkpoints import bundled_checkpoint, load_checkpoint, read_config

    tool = load_script("training/average_checkpoints.py")
    polyp, skin = bundled_checkpoint("polyp"), bundled_checkpoint("skin")
    out = tmp_path / "soup.safetensors"
    assert tool.main([str(polyp), str(skin), "--weights", "3", "1", "--input-size", "288", "288", "--out", str(out)]) == 0
    soup = load_checkpoint(out)[0].state_dict()
    a, b = load_checkpoint(polyp)[0].state_dict(), load_checkpoint(skin)[0].state_dict()
    for key, tensor in soup.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, 0.75 * a[key] + 0.25 * b[key], atol=1e-6), key
        else:
            assert torch.equal(tensor, a[key]), key
    config = read_config(out)
    assert config.input_size == (288, 288) and config.parent == read_config(polyp).version
    assert len(config.training["averaged_from"]) == 2 and config.metrics == {}
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        tool.main([str(polyp), str(skin), "--out", str(out)])
    assert out.read_bytes() == before
    with pytest.raises(ValueError, match="two or more"):
        tool.average([polyp], [1.0])


def test_recalibrate_bn_recomputes_batchnorm_statistics_and_touches_no_weight(tmp_path, small_checkpoint):
    """training/recalibrate_bn.py (SWA's BatchNorm pass for weight averages): the first BatchNorm layer's
    running statistics become the mean over the shuffled batches of its inputs' batch means and batch
    variances (what training keeps); weights do not move; nothing is overwritten."""
    from conftest import load_script, make_synthetic_pairs

    from napari_unetv2.engine.data import PairDataset, find_pairs

    tool = load_script("training/recalibrate_bn.py")
    data = make_synthetic_pairs(tmp_path / "pairs")
    out = tmp_path / "bn.safetensors"
    assert tool.main([str(small_checkpoint), "--data", str(data), "--batch-size", "4", "--out", str(out)]) == 0
    (before, _), (after, config) = load_checkpoint(small_checkpoint), load_checkpoint(out)
    old, new = before.state_dict(), after.state_dict()
    assert any(not torch.equal(old[k], new[k]) for k in new if k.endswith("running_mean"))
    for key in new:
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(old[key], new[key]), key
    first_bn = next(m for m in after.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = first_bn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    dataset = PairDataset(find_pairs(data).pairs, config.input_size, config.normalization)
    with torch.no_grad():
        for indices in tool.shuffled_batches(range(len(dataset)), 4, seed=0):  # the tool's batches
            after(torch.stack([dataset[int(i)][0] for i in indices]))
    hook.remove()
    # shuffled as training draws them, not in file order (consecutive frames of one video vary little)
    assert [b.tolist() for b in tool.shuffled_batches(range(8), 4, seed=0)] != [[0, 1, 2, 3], [4, 5, 6, 7]]
    per_batch = [x.transpose(0, 1).flatten(1) for x in seen]  # (channels, every pixel of the batch's frames)
    assert len(per_batch) == 2
    assert torch.allclose(first_bn.running_mean, torch.stack([f.mean(1) for f in per_batch]).mean(0), atol=1e-5)
    assert torch.allclose(first_bn.running_var, torch.stack([f.var(1) for f in per_batch]).mean(0), rtol=1e-4, atol=1e-6)
    assert config.parent == read_config(small_checkpoint).version and "seed 0" in config.training["bn_recalibrated_on"]
    stored = out.read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        tool.main([str(small_checkpoint), "--data", str(data), "--out", str(out)])
    assert out.read_bytes() == stored


def test_the_cli_names_a_stored_version_or_the_model_in_use(isolated_home, small_checkpoint):
    """`unetv2 predict --checkpoint <version>` and `--checkpoint "in use"` gave "Checkpoint not found": only the full
    path inside the widgets' model store worked (trial of session 28)."""
    from napari_unetv2.checkpoints import ModelStore, bundled_checkpoint, resolve_checkpoint

    assert resolve_checkpoint("in-use") == bundled_checkpoint()
    assert not isolated_home.exists()  # naming the model in use creates no store
    store = ModelStore(isolated_home / "models")
    version = store.add(small_checkpoint).version
    assert resolve_checkpoint(version) == store.path_of(version)
    assert resolve_checkpoint("in-use") == bundled_checkpoint()
    store.use(version)
    assert resolve_checkpoint("in-use") == resolve_checkpoint("in use") == store.path_of(version)
    with pytest.raises(FileNotFoundError, match="neither a file nor a version in the model store"):
        resolve_checkpoint("0123456789ab")  # it says where it looked (it said only "Checkpoint not found")


def test_a_pickle_without_its_json_is_refused_as_a_pickle(tmp_path):
    """`unetv2 finetune --checkpoint statedict.pt` said "Checkpoint config not found" where predict said what is wrong
    with the file: a pickle is not read (trial of session 28)."""
    from napari_unetv2.checkpoints import read_config
    from napari_unetv2.checkpoints.state_dicts import UntrustedCheckpointError

    path = tmp_path / "statedict.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(UntrustedCheckpointError, match="pickle-based file"):
        read_config(path)


def test_a_second_ctrl_c_during_a_held_save_goes_through_at_once(python_sigint):
    """A save stalled on a network disk must stay interruptible (cold review of session 28)."""
    import os
    import signal

    from napari_unetv2.files import interrupts_deferred

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("held")
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("not reached")
    assert reached == ["held"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
