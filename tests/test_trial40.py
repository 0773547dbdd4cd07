"""Session 40: stop 39's list worked through, and a clinician trial of two annotators at once on shared folders.
Each test failed on the code before its fix."""

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
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


SKIN_SAMPLE = "ph2_IMD002"


def test_a_session_asks_once_before_storing_an_image_the_hint_says_is_for_another_model(make_napari_viewer, qtbot,
                                                                                         tmp_path):
    """*Accept & next* stored a dermoscopy image segmented by the polyp model in the correction set with no word
    beyond the hint (said once for a run of such images): the polyp line's next round trained on it. Now the first
    press asks; a second stores it, and images like it are not asked about again in the session."""
    from test_session import open_session, wait_shown

    from napari_unetv2._sample_data import sample_data_dir
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.widgets._layers import ADVISED_MODEL

    images = tmp_path / "images"
    images.mkdir()
    for name in (SKIN_SAMPLE, "kvasir_cju0qkwl35piu0993l0dewei2"):
        shutil.copy2(sample_data_dir() / "images" / f"{name}.jpg", images / f"{name}.jpg")
    skin = iio.imread(sample_data_dir() / "images" / f"{SKIN_SAMPLE}.jpg")
    iio.imwrite(images / "zz_skin_again.png", np.ascontiguousarray(skin[::-1]))  # another image of the kind
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", images)
    corrections = CorrectionSet(Path(session.corrections.value))
    assert session.session.current.name == "kvasir_cju0qkwl35piu0993l0dewei2.jpg"  # (sorted: k before p)
    assert session.mask_layer.metadata[ADVISED_MODEL] is None
    assert session.accept_and_next() is not None, session.status.value  # a polyp frame: no question
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    wait_shown(qtbot, session)
    assert session.session.current.name == f"{SKIN_SAMPLE}.jpg"
    assert session.accept_and_next() is None  # asked
    status = session.status.value.replace("\u200b", "")
    assert "skin" in status and "again" in status, status
    assert session.session.current.name == f"{SKIN_SAMPLE}.jpg" and len(corrections.entries()) == 1
    assert session.accept_and_next() is not None, session.status.value  # the second press stores it
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    assert len(corrections.entries()) == 2
    wait_shown(qtbot, session)
    assert session.session.current.name == "zz_skin_again.png"
    assert session.mask_layer.metadata[ADVISED_MODEL] == "skin"  # asked about, were it not answered
    assert session.accept_and_next() is not None, session.status.value  # answered once for such images
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    assert len(corrections.entries()) == 3


def test_correct_and_retrain_asks_before_storing_an_image_the_hint_says_is_for_another_model(make_napari_viewer,
                                                                                             qtbot):
    """Segment's result said "choose the bundled skin model"; *Accept* in *Correct & retrain* stored the polyp model's
    mask of the dermoscopy image at once, for the polyp line's rounds."""
    from test_gui_findings import dock, segment

    viewer = make_napari_viewer()
    _, seg = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    rt = dock(viewer, "Correct & retrain")
    viewer.open_sample("napari-unetv2", "skin")
    image = next(layer for layer in viewer.layers if SKIN_SAMPLE in layer.name or "IMD002" in layer.name)
    seg.image.value = image
    segment(qtbot, seg)
    assert "skin model" in seg.status.value.replace("\u200b", "")
    rt.image.value = image
    assert rt.accept_correction() is None
    status = rt.status.value.replace("\u200b", "")
    assert "skin" in status and "again" in status, status
    assert len(rt.correction_set.entries()) == 0
    assert rt.accept_correction() is not None, rt.status.value
    assert len(rt.correction_set.entries()) == 1
