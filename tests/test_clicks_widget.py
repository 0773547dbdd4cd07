"""The click widget in a real napari viewer: clicks, undo, box, and Accept with the click count."""
from types import SimpleNamespace

import numpy as np

import napari_unetv2.widgets  # noqa: F401  (sets up the import guard before the viewer exists)
from napari_unetv2.inference import Prediction
from napari_unetv2.interactive import CLICKS_METADATA
from napari_unetv2.widgets._layers import show_prediction

PLUGIN = "napari-unetv2"
H, W = 240, 320


def blob(cy, cx, r):
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def segmented_viewer(make_napari_viewer, probability):
    """A viewer as after *Segment*: the image, its probability and mask layers; the click widget docked."""
    viewer = make_napari_viewer()
    image = np.full((H, W, 3), (200, 140, 130), np.uint8)
    image[blob(60, 240, 14)] = (110, 50, 50)  # a small dark lesion
    layer = viewer.add_image(image, name="frame", rgb=True)
    prediction = Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8))
    show_prediction(viewer, layer, prediction, "test")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct with clicks")
    widget.image.value = layer
    assert widget.start() is not None
    return viewer, widget, viewer.layers["frame mask"]


def press(widget, points, y, x, button=1, modifiers=()):
    """A press and release on the clicks layer without a drag, through the widget's mouse callback."""
    event = SimpleNamespace(type="mouse_press", position=(y, x), button=button, modifiers=modifiers)
    handler = widget._on_mouse(points, event)
    next(handler)
    event.type = "mouse_release"
    for _ in handler:
        pass


def two_blobs_probability():
    probability = np.full((H, W), 0.01, np.float32)
    probability[blob(120, 100, 30)] = 0.95  # found
    probability[blob(170, 230, 15)] = 0.35  # missed: half-seen, below the threshold
    return probability


def test_positive_click_on_a_missed_blob_adds_it(make_napari_viewer):
    viewer, widget, mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    assert mask.data[blob(170, 230, 15)].sum() == 0
    widget.click(170, 230, positive=True)
    assert mask.data[blob(170, 230, 15)].all()
    assert mask.data[blob(120, 100, 30)].all() and mask.data.sum() == blob(120, 100, 30).sum() + blob(170, 230, 15).sum()
    assert mask.metadata[CLICKS_METADATA] == 1
    assert len(viewer.layers["frame clicks"].data) == 1


def test_the_mouse_left_adds_and_right_or_shift_removes(make_napari_viewer):
    probability = two_blobs_probability()
    probability[blob(40, 40, 10)] = 0.9  # a false blob
    viewer, widget, mask = segmented_viewer(make_napari_viewer, probability)
    points = viewer.layers["frame clicks"]
    press(widget, points, 40, 40, button=2)
    assert mask.data[blob(40, 40, 10)].sum() == 0
    press(widget, points, 170, 230)
    assert mask.data[blob(170, 230, 15)].all()
    press(widget, points, 170, 230, modifiers=("Shift",))
    assert mask.data[blob(170, 230, 15)].sum() == 0
    assert mask.metadata[CLICKS_METADATA] == 3


def test_negative_click_removes_a_false_blob(make_napari_viewer):
    probability = two_blobs_probability()
    probability[blob(40, 40, 10)] = 0.9
    viewer, widget, mask = segmented_viewer(make_napari_viewer, probability)
    widget.click(40, 40, positive=False)
    assert mask.data[blob(40, 40, 10)].sum() == 0
    assert mask.data[blob(120, 100, 30)].all()


def test_undo_restores_the_mask_and_the_brush_edit_stays(make_napari_viewer):
    viewer, widget, mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    mask.data[5:10, 5:10] = 1  # a brush stroke before the click: same array
    before = mask.data.copy()
    widget.click(170, 230, positive=True)
    assert not np.array_equal(mask.data, before)
    widget.undo()
    assert np.array_equal(mask.data, before)
    assert mask.metadata[CLICKS_METADATA] == 0 and len(viewer.layers["frame clicks"].data) == 0
    assert widget.undo() is None and "nothing to undo" in widget.status.value


def test_a_box_on_a_small_lesion_changes_only_the_box(make_napari_viewer, qtbot):
    probability = np.full((H, W), 0.01, np.float32)
    probability[blob(150, 80, 40)] = 0.9  # the rest of the proposal must survive the box
    viewer, widget, mask = segmented_viewer(make_napari_viewer, probability)
    before = mask.data.copy()
    box_layer = viewer.layers["frame box"]
    box_layer.add_rectangles(np.array([[36, 216], [84, 264]]))  # as a user draws it: the widget starts the worker
    worker = widget.worker
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.worker is None, timeout=5000)
    inside = np.zeros((H, W), bool)
    inside[36:84, 216:264] = True
    assert np.array_equal(mask.data[~inside], before[~inside])
    assert mask.data[inside].sum() > 0  # something was segmented in the box
    assert mask.metadata[CLICKS_METADATA] == 1 and len(box_layer.data) == 0


def test_accept_stores_the_clicked_mask_with_the_click_count(make_napari_viewer, tmp_path):
    from napari_unetv2.files import read_mask
    from napari_unetv2.widgets.retrain import RetrainWidget

    viewer, widget, mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    widget.click(170, 230, positive=True)
    widget.click(20, 20, positive=True)
    widget.undo()
    widget.click(120, 100, positive=False)
    retrain = RetrainWidget(viewer, corrections_dir=tmp_path / "set", store_dir=tmp_path / "models")
    retrain.image.value = viewer.layers["frame"]
    entry = retrain.accept_correction()
    assert entry is not None, retrain.status.value
    assert entry.clicks == 2
    stored = read_mask(tmp_path / "set" / entry.mask_file)
    assert np.array_equal(stored, mask.data > 0)
    assert retrain.correction_set.entries()[0].clicks == 2


def test_each_point_keeps_its_own_colour(make_napari_viewer):
    """The trial of session 24: each click recoloured the previous point (additions drawn red, removals green)."""
    viewer, widget, _mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    widget.click(170, 230, positive=True)
    widget.click(120, 100, positive=False)
    widget.click(40, 40, positive=True)
    colours = viewer.layers["frame clicks"].face_color
    assert [tuple(c[:3]) for c in colours] == [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]


def test_a_stack_is_not_offered_for_clicks_and_start_refuses_it_without_adding_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    stack = np.zeros((3, H, W), np.float32)
    layer = viewer.add_image(stack, name="stack")
    probability = np.full((3, H, W), 0.2, np.float32)
    show_prediction(viewer, layer, Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8)), "t")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct with clicks")
    assert layer not in widget.image.choices
    before = len(viewer.layers)
    widget._layers = lambda: (layer, viewer.layers["stack mask"])  # as if chosen before the list was refreshed
    assert widget.start() is None and "2-D" in widget.status.value and len(viewer.layers) == before


def test_renaming_the_image_keeps_it_clickable(make_napari_viewer):
    """The trial of session 25: the widget found an image's mask and probability by their names, so an image renamed
    (which the README says breaks nothing) left the list and its clicks stopped working."""
    viewer, widget, mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    image = viewer.layers["frame"]
    image.name = "patient 12, frame 3"
    widget.reset_choices()
    assert image in widget.image.choices
    widget.image.value = image
    assert widget.click(170, 230) is not None and mask.data[170, 230] == 1


def test_a_box_re_runs_the_model_that_made_the_mask(make_napari_viewer, qtbot, isolated_home, monkeypatch):
    """The trial of session 25: a box on a skin image's mask re-ran the model in use (the polyp model), which cut
    32,502 lesion pixels out of the skin mask inside the box. It runs the model that made the mask."""
    from napari_unetv2.checkpoints import bundled_checkpoint, read_config
    from napari_unetv2.widgets._state import model_in_use
    from napari_unetv2.widgets.clicks import checkpoint_of_mask

    models = model_in_use()
    asked, predictor = [], models.predictor
    monkeypatch.setattr(models, "predictor", lambda checkpoint, device: (asked.append(checkpoint), predictor(checkpoint, device))[1])
    viewer, widget, mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    mask.metadata["model_version"] = read_config(bundled_checkpoint("skin")).version  # as Segment stamps it
    worker = widget.run_box(36, 216, 84, 264)
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert asked == [bundled_checkpoint("skin")]
    assert checkpoint_of_mask(models, "0123456789ab") == models.checkpoint()  # not here: the model in use
    assert checkpoint_of_mask(models, None) == models.checkpoint()


def test_the_chooser_follows_the_selected_image_and_shows_only_its_clicks(make_napari_viewer):
    """Session 26's second trial: Correct with clicks stayed on the last image clicked when another was selected
    (Segment and Correct & retrain follow), and its points stayed over the other images. Session 27's: back on the
    image (its image layer selected, not its clicks layer), a canvas click did nothing and the status did not say why."""
    probability = two_blobs_probability()
    viewer, widget, _mask = segmented_viewer(make_napari_viewer, probability)
    first = viewer.layers["frame"]
    assert widget.click(170, 230) is not None
    second = viewer.add_image(np.zeros((H, W, 3), np.uint8), name="second", rgb=True)
    show_prediction(viewer, second, Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8)), "t")
    viewer.layers.selection.active = second
    assert widget.image.value is second and "second" in widget.status.value
    assert not viewer.layers["frame clicks"].visible
    viewer.layers.selection.active = first
    assert widget.image.value is first and viewer.layers["frame clicks"].visible
    assert "1 click(s) in effect; press 'Click on this image'" in widget.status.value
    viewer.layers.selection.active = second
    viewer.layers.selection.active = viewer.layers["frame clicks"]  # its clicks layer: clicking goes on, no hint
    assert widget.image.value is first and widget.status.value == "frame: 1 click(s) in effect"


def test_undo_takes_the_point_off_the_image_whose_click_it_undoes(make_napari_viewer):
    probability = two_blobs_probability()
    viewer, widget, _mask = segmented_viewer(make_napari_viewer, probability)
    first = viewer.layers["frame"]
    assert widget.click(170, 230) is not None  # one click on "frame"
    second = viewer.add_image(np.zeros((H, W, 3), np.uint8), name="second", rgb=True)
    show_prediction(viewer, second, Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8)), "t")
    viewer.layers.selection.active = second
    assert widget.start() is not None and widget.click(170, 230) is not None  # one on "second"
    viewer.layers.selection.active = first  # back to the first image: the chooser follows
    assert widget.undo() is not None
    assert {n: len(viewer.layers[n].data) for n in ("frame clicks", "second clicks")} == {"frame clicks": 0,
                                                                                          "second clicks": 1}


def test_clicks_accept_and_the_brush_bring_a_covered_image_into_view(make_napari_viewer, tmp_path, qtbot):
    """Session 27's trial: the widgets follow the image selected in the layer list, but napari drew the other image on
    top; a right click removed 18041 pixels from the hidden mask and Accept stored it for training, unseen."""
    probability = two_blobs_probability()
    viewer, widget, first_mask = segmented_viewer(make_napari_viewer, probability)
    first = viewer.layers["frame"]
    second = viewer.add_image(np.full((H, W, 3), 90, np.uint8), name="second", rgb=True)  # opaque, drawn over "frame"
    show_prediction(viewer, second, Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8)), "t")
    index = viewer.layers.index
    viewer.layers.selection.active = first  # every widget now works on "frame", the canvas still shows "second"
    assert index(first) < index(second)
    _, retrain = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct & retrain")
    retrain.folder.value = str(tmp_path / "set")
    retrain.image.value, retrain.mask.value = first, first_mask
    assert retrain.accept_correction() is None and "not on screen" in retrain.status.value
    assert index(first) > index(second) and index(first_mask) > index(second)  # shown now, not stored
    assert not retrain.correction_set.entries()
    assert retrain.accept_correction() is not None  # seen: the second press stores it

    viewer.layers.move(index(second), len(viewer.layers))  # "second" drawn over "frame" again
    for layer in [x for x in viewer.layers if x.name.startswith("second ")]:
        viewer.layers.move(index(layer), len(viewer.layers))
    viewer.layers.selection.active = first
    assert widget.start() is not None and index(first_mask) > index(second)  # clicks edit the mask on screen
    assert "brought into view" in widget.status.value

    viewer.layers.move(index(second), len(viewer.layers))
    viewer.layers.selection.active = first_mask  # about to paint on the covered mask
    qtbot.waitUntil(lambda: index(first) > index(second), timeout=2000)
    viewer.layers.move(index(second), len(viewer.layers))
    viewer.layers.selection.active = viewer.layers["frame clicks"]  # its clicks layer chosen in the list (review)
    qtbot.waitUntil(lambda: index(first) > index(second) and index(first_mask) > index(second), timeout=2000)
    assert widget.click(170, 230) is not None
    viewer.layers.move(index(second), len(viewer.layers))
    for layer in [x for x in viewer.layers if x.name.startswith("second ")]:
        viewer.layers.move(index(layer), len(viewer.layers))
    assert widget.undo() is not None  # Undo last click changes the mask: it is shown (verification of session 27)
    assert index(first_mask) > index(second) and "brought into view" in widget.status.value


def test_a_click_on_another_images_clicks_layer_edits_nothing(make_napari_viewer):
    """Session 27's review: the chooser moved to another image from its list while the first image's clicks layer
    stayed selected; a canvas click then edited the other image's mask."""
    probability = two_blobs_probability()
    viewer, widget, first_mask = segmented_viewer(make_napari_viewer, probability)
    points = viewer.layers["frame clicks"]
    second = viewer.add_image(np.zeros((H, W, 3), np.uint8), name="second", rgb=True)
    show_prediction(viewer, second, Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8)), "t")
    viewer.layers.selection.active = points
    widget.image.value = second  # chosen in the widget's own list
    before = {n: viewer.layers[n].data.copy() for n in ("frame mask", "second mask")}
    event = SimpleNamespace(type="mouse_press", position=(170, 230), button=1, modifiers=())
    handler = widget._on_mouse(points, event)
    next(handler)
    event.type = "mouse_release"
    for _ in handler:
        pass
    assert all(np.array_equal(viewer.layers[n].data, before[n]) for n in before)
    assert "not clicked" in widget.status.value


def test_in_grid_mode_images_side_by_side_are_all_in_view(make_napari_viewer):
    """napari's grid shows every image beside the others: nothing is covered, nothing is moved."""
    from napari_unetv2.widgets._layers import bring_into_view, grid_enabled, in_view

    probability = two_blobs_probability()
    viewer, _widget, first_mask = segmented_viewer(make_napari_viewer, probability)
    first = viewer.layers["frame"]
    second = viewer.add_image(np.full((H, W, 3), 90, np.uint8), name="second", rgb=True)
    assert not in_view(viewer, first, first_mask)  # stacked: "second" covers it
    viewer.canvas.grid.enabled = True
    assert grid_enabled(viewer) and in_view(viewer, first, first_mask)
    order = [x.name for x in viewer.layers]
    assert not bring_into_view(viewer, first, first_mask) and [x.name for x in viewer.layers] == order
    assert second.visible


def press_ctrl_z(layer):
    """Ctrl+Z as napari dispatches it to a layer: the layer's own binding, else its class's (Labels: undo)."""
    from napari.utils.key_bindings import KeyBinding

    key = KeyBinding.from_str("Control-Z")
    handler = layer.keymap.get(key) or type(layer).class_keymap[key]
    handler(layer)


def test_ctrl_z_on_the_mask_undoes_its_brush_strokes_then_the_clicks(make_napari_viewer):
    """napari's Ctrl+Z on the mask took a click's pixels back while the click stayed counted and marked (and was stored
    with the correction): it now undoes the brush strokes made since the last click, then the click as a whole."""
    viewer, widget, mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    points = viewer.layers["frame clicks"]
    mask.brush_size = 5
    mask.paint((20, 20), 1)  # a brush stroke before the click
    before_click = mask.data.copy()
    widget.click(170, 230, positive=True)
    after_click = mask.data.copy()
    mask.paint((200, 40), 1)  # and one after it
    assert mask.data[200, 40] == 1

    press_ctrl_z(mask)  # the stroke after the click
    assert np.array_equal(mask.data, after_click)
    assert mask.metadata[CLICKS_METADATA] == 1 and len(points.data) == 1

    press_ctrl_z(mask)  # the click: pixels, point and count together
    assert np.array_equal(mask.data, before_click)
    assert mask.metadata[CLICKS_METADATA] == 0 and len(points.data) == 0
    assert "undid the last positive click" in widget.status.value

    press_ctrl_z(mask)  # the stroke before the click belonged to the pixels the click was made on: it stays
    assert np.array_equal(mask.data, before_click)
    assert widget.status.value.replace("\u200b", "") == "nothing to undo"  # as Undo last click says
