"""Session 40: stop 39's list worked through, and a clinician trial of two annotators at once on shared folders.
Each test failed on the code before its fix."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file


def _without_version_metadata(path):
    """Re-save ``path``'s tensors with no version in the file's metadata (as files written before it was recorded,
    or by another tool, are): only the JSON names the version then."""
    save_file(load_file(str(path)), str(path), metadata={"format": "pt"})


def test_models_add_refuses_a_json_naming_another_models_version(small_checkpoint, tmp_path, capsys):
    """``unetv2 models add`` took the version id from the JSON: a JSON naming a version already stored (copied beside
    other weights, or edited) was "already in the store: nothing added", and ``--use`` put the *other* model in use."""
    from napari_unetv2.checkpoints import ModelStore, bundled_checkpoint, config_path_for, read_config
    from napari_unetv2.cli import main
    from napari_unetv2.storage import default_model_store_dir

    store = ModelStore(default_model_store_dir())
    skin = bundled_checkpoint("skin")
    stored = store.add(skin).version
    colleague = tmp_path / "colleague" / "best.safetensors"
    colleague.parent.mkdir()
    shutil.copy2(small_checkpoint, colleague)
    _without_version_metadata(colleague)
    about = json.loads(config_path_for(small_checkpoint).read_text())
    about["version"] = stored  # the JSON of another model
    config_path_for(colleague).write_text(json.dumps(about))
    assert read_config(colleague).version == stored

    with pytest.raises(ValueError, match="weights"):
        store.add(colleague)
    assert main(["models", "add", str(colleague), "--use"]) != 0
    err = capsys.readouterr().err
    assert stored in err and "nothing" in err
    assert store.current is None  # nothing put in use
    assert [c.version for c in store.versions()] == [stored]


def test_models_add_takes_a_checkpoint_without_version_metadata_whose_json_is_right(small_checkpoint, tmp_path):
    """The check is on the weights' content, so an honest file without the metadata still joins the store."""
    from napari_unetv2.checkpoints import ModelStore, read_config
    from napari_unetv2.storage import default_model_store_dir

    plain = tmp_path / "plain.safetensors"
    shutil.copy2(small_checkpoint, plain)
    shutil.copy2(small_checkpoint.with_suffix(".json"), plain.with_suffix(".json"))
    _without_version_metadata(plain)
    store = ModelStore(default_model_store_dir())
    assert store.add(plain).version == read_config(small_checkpoint).version
    assert [c.version for c in store.versions()] == [read_config(small_checkpoint).version]
