"""Session 37: what stop 36 left, and a clinician trial of napari's own layer actions between the plugin's steps.
Each test failed on the code before its fix."""
import numpy as np

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)

PLUGIN = "napari-unetv2"


def test_the_empty_mask_note_gives_way_once_painted(make_napari_viewer, qtbot, isolated_home):
    """"The model marked nothing in this image (its mask is empty)" went on being said over a painted mask."""
    from test_gui_findings import segment

    viewer = make_napari_viewer()
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    image = viewer.add_image(np.full((256, 256, 3), 128, np.uint8), name="plain grey")
    seg.image.value = image
    segment(qtbot, seg)
    assert "its mask is empty" in seg.status.value, seg.status.value
    mask = seg.last_result["mask"]
    mask.paint((128, 128), 1)  # a brush stroke: napari's paint event
    assert mask.data.any()
    status = seg.status.value.replace("\u200b", "")
    assert "its mask is empty" not in status and "holds what you painted" in status, status
    assert status.startswith("done in"), status  # the rest of what was said stays



def test_napari_convert_to_image_of_a_mask_breaks_nothing(make_napari_viewer, qtbot, isolated_home):
    """napari's *Convert to Image* on a mask kept its metadata: the kept edits' watch raised at the convert, the next
    Segment raised in ready_to_paint ('paint' is not a valid Mode) with its status stuck, and Correct & retrain said only
    "no mask"."""
    from napari.layers import Image, Labels
    from napari.layers._layer_actions import _convert_to_image
    from test_gui_findings import dock, error_toasts, segment, two_samples_and_segment

    from napari_unetv2.widgets._layers import MASK, layer_of

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    seg.image.value = first
    segment(qtbot, seg)
    mask = layer_of(viewer, first, MASK)
    name = mask.name
    viewer.layers.selection.active = mask
    _convert_to_image(viewer.layers)  # raised AttributeError ('EmitterGroup' object has no attribute 'paint')
    converted = viewer.layers[name]
    assert isinstance(converted, Image) and layer_of(viewer, first, MASK) is None
    assert converted not in seg.image.choices  # a mask made an image is no image to segment
    rt = dock(viewer, "Correct & retrain")
    rt.image.value = first
    assert rt.accept_correction() is None
    assert "converted to an image layer" in rt.status.value.replace("\u200b", ""), rt.status.value
    seg.image.value = first
    segment(qtbot, seg)
    assert seg.status.value.startswith("done"), seg.status.value
    assert isinstance(layer_of(viewer, first, MASK), Labels) and not error_toasts()


def test_napari_copies_of_plugin_layers_are_the_users_own(make_napari_viewer, qtbot, isolated_home):
    """napari's *Duplicate Layer* and *Split RGB* copy the metadata: a copy of a segmented image ran Segment into the
    original's mask, a copy of a mask was a second mask of its image, a split colour channel was the colour image."""
    from napari.layers._layer_actions import _duplicate_layer, _split_rgb
    from test_gui_findings import segment, two_samples_and_segment

    from napari_unetv2.widgets._layers import MASK, PROBABILITY, image_for, layer_of

    viewer, seg, first, second = two_samples_and_segment(make_napari_viewer)
    for image in (first, second):
        seg.image.value = image
        segment(qtbot, seg)
    mask = layer_of(viewer, first, MASK)
    mask.paint((30, 30), 1)
    viewer.layers.selection.active = mask
    _duplicate_layer(viewer.layers)
    mask_copy = viewer.layers[f"{mask.name} copy"]
    assert layer_of(viewer, first, MASK) is mask and image_for(viewer, mask_copy) is None
    probability = layer_of(viewer, first, PROBABILITY)
    viewer.layers.selection.active = probability
    _duplicate_layer(viewer.layers)
    assert viewer.layers[f"{probability.name} copy"] not in seg.image.choices  # no image to segment
    viewer.layers.selection.active = first
    _duplicate_layer(viewer.layers)
    image_copy = viewer.layers[f"{first.name} copy"]
    assert layer_of(viewer, image_copy, MASK) is None
    seg.image.value = image_copy
    qtbot.waitUntil(lambda: "not segmented yet" in seg.status.value, timeout=5000)
    segment(qtbot, seg)
    assert layer_of(viewer, image_copy, MASK) is not layer_of(viewer, first, MASK)
    assert layer_of(viewer, first, MASK) is mask and mask.name == f"{first.name} mask"
    viewer.layers.selection.active = second
    before = set(map(id, viewer.layers))
    _split_rgb(viewer.layers)  # the colour image goes, its channels come
    channels = [layer for layer in viewer.layers if id(layer) not in before]
    assert len(channels) == 3 and all(layer_of(viewer, channel, MASK) is None for channel in channels)


def test_closing_the_image_on_screen_shows_an_open_image_not_closed_masks(make_napari_viewer, qtbot, isolated_home):
    """Closing the image on screen left a black canvas with the painted masks of closed images drawn over each other,
    and the open images hidden (hidden by the plugin while another was viewed)."""
    from test_gui_findings import segment

    from napari_unetv2._sample_data import SAMPLES
    from napari_unetv2.widgets._layers import MASK, bring_into_view, hide_every_image, layer_of

    viewer = make_napari_viewer()
    for key in SAMPLES:
        viewer.open_sample(PLUGIN, key)
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    images = [viewer.layers[name] for name in SAMPLES.values()]
    for image in images:
        seg.image.value = image
        segment(qtbot, seg)
        layer_of(viewer, image, MASK).paint((20, 20), 1)  # painted, not stored
    hide_every_image(viewer)
    last = images[-1]
    bring_into_view(viewer, last, layer_of(viewer, last, MASK))
    assert last.visible and not any(image.visible for image in images[:-1])
    closed_mask = layer_of(viewer, last, MASK)
    viewer.layers.selection.active = last  # (napari's delete acts on the layer selected)
    viewer.layers.remove(last)
    qtbot.waitUntil(lambda: closed_mask.name.endswith("(image closed)"), timeout=5000)
    assert not closed_mask.visible  # kept, named as closed, not drawn over another image
    shown = [image for image in images[:-1] if image.visible]
    assert len(shown) == 1 and layer_of(viewer, shown[0], MASK).visible
    for image in images[:-1]:
        viewer.layers.remove(image)
    qtbot.waitUntil(lambda: all(x.name.endswith("(image closed)") for x in viewer.layers if x.metadata.get("unetv2_role")
                                == MASK), timeout=5000)
    qtbot.wait(50)
    assert closed_mask.visible  # no image open: the unsaved work of closed images is drawn again


def test_click_on_this_image_does_not_start_on_another_image_than_the_one_selected(make_napari_viewer, qtbot):
    """With a stack selected (or an image whose probability layer was closed) the clicks chooser stayed on the image
    before, and 'Click on this image' started there, bringing it over the one selected, with no word of why."""
    from napari_unetv2.inference import Prediction
    from napari_unetv2.widgets._layers import PROBABILITY, layer_of, show_prediction

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)

    def segmented(name, shape, rgb):
        layer = viewer.add_image(rng.integers(0, 255, shape, np.uint8), name=name, rgb=rgb)
        probability = rng.random(shape[:-1] if rgb else shape).astype(np.float32)
        show_prediction(viewer, layer, Prediction(probability=probability, mask=(probability >= 0.5).astype(np.uint8)), "t")
        return layer

    frame = segmented("frame", (60, 80, 3), True)
    stack = segmented("stack", (3, 60, 80), False)
    other = segmented("other", (60, 80, 3), True)
    _, clicks = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct with clicks")
    viewer.layers.selection.active = frame
    assert clicks.image.value is frame
    viewer.layers.selection.active = stack
    qtbot.wait(20)  # (judged on the next turn of the event loop)
    assert clicks.image.value is frame and "stack" in clicks.status.value and "2-D" in clicks.status.value
    before = len(viewer.layers)
    assert clicks.start() is None and "not started" in clicks.status.value and len(viewer.layers) == before
    viewer.layers.remove(layer_of(viewer, other, PROBABILITY))
    viewer.layers.selection.active = other
    qtbot.wait(20)
    assert "has no probability layer (it was closed" in clicks.status.value and clicks.start() is None
    viewer.layers.selection.active = frame  # a clickable image selected: Start goes to it
    qtbot.wait(20)
    assert clicks.start() is not None and layer_of(viewer, frame, "clicks").visible
    frame.visible = False
    clicks._on_image_chosen()  # its marks are not drawn over the canvas while the image is hidden
    assert not layer_of(viewer, frame, "clicks").visible


def test_a_click_that_changes_nothing_says_so(make_napari_viewer):
    """"removed 0 pixels; 2 click(s) in effect" read as a click that failed."""
    from test_clicks_widget import segmented_viewer, two_blobs_probability

    _viewer, widget, _mask = segmented_viewer(make_napari_viewer, two_blobs_probability())
    assert widget.click(10, 10, positive=False) is not None  # background: nothing to remove there
    assert "changed nothing" in widget.status.value and "0 pixels" not in widget.status.value, widget.status.value


def test_a_mask_converted_to_an_image_and_back_is_not_a_deletion_nor_a_second_mask(make_napari_viewer, qtbot,
                                                                                      isolated_home):
    """Verification of session 37: Convert to Image of a painted mask was said as a deletion (Restore offered) and its
    kept edits were dropped from disk; the image segmented again (a new mask, painted) and the old one converted back
    made two masks, and Accept stored the old, unedited one ("0 pixels changed")."""
    from napari.layers import Labels
    from napari.layers._layer_actions import _convert_to_image, _convert_to_labels
    from test_gui_findings import dock, segment, two_samples_and_segment

    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.files import read_mask
    from napari_unetv2.widgets._kept_edits import IMAGE_KEY, painted_mask_keeper
    from napari_unetv2.widgets._layers import MASK, layer_of

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    seg.image.value = first
    segment(qtbot, seg)
    old = layer_of(viewer, first, MASK)
    old.paint((30, 30), 1)
    keeper = painted_mask_keeper(viewer)
    keeper.flush()
    key, shape = old.metadata[IMAGE_KEY], old.data.shape
    assert keeper.store.find(key, shape) is not None
    viewer.layers.selection.active = old
    _convert_to_image(viewer.layers)
    qtbot.wait(50)
    converted = viewer.layers[old.name]
    assert seg.restore_button.native.isHidden() and "was deleted" not in seg.status.value, seg.status.value
    keeper.flush()
    assert keeper.store.find(key, shape) is not None  # the edits stay kept on disk
    seg.image.value = first
    segment(qtbot, seg)
    new = layer_of(viewer, first, MASK)
    new.paint((200, 200), 1)
    painted = np.asarray(new.data).copy()
    viewer.layers.selection.active = converted
    _convert_to_labels(viewer.layers)
    back = next(x for x in viewer.layers if isinstance(x, Labels) and x.data is converted.data)
    assert layer_of(viewer, first, MASK) is new and back.metadata.get("unetv2_role") is None  # one mask per image
    rt = dock(viewer, "Correct & retrain")
    rt.image.value = first
    assert rt.mask.value is new
    entry = rt.accept_correction()
    assert entry is not None, rt.status.value
    stored = read_mask(CorrectionSet(isolated_home / "corrections").root / entry.mask_file)
    assert np.array_equal(stored > 0, painted > 0)


def test_a_mask_restored_onto_a_closed_image_is_its_one_mask_when_it_reopens(make_napari_viewer, qtbot, isolated_home):
    """Cold review of session 37: a painted mask deleted, the image segmented again and painted, then closed, and the
    deleted one restored: taken for a copy napari made, the restored mask lost every key it is known by, and reopening
    the image took back only the other."""
    from test_gui_findings import segment, two_samples_and_segment

    from napari_unetv2.widgets._layers import MASK, layer_of, layers_of, same_layer

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    seg.image.value = first
    segment(qtbot, seg)
    old = layer_of(viewer, first, MASK)
    old.paint((30, 30), 1)
    viewer.layers.remove(old)  # deleted with painted edits: kept for Restore
    segment(qtbot, seg)
    layer_of(viewer, first, MASK).paint((200, 200), 1)
    pixels = np.asarray(first.data).copy()
    viewer.layers.remove(first)
    qtbot.waitUntil(lambda: any(x.name.endswith("(image closed)") for x in viewer.layers), timeout=5000)
    restored = seg.restore_deleted_mask()
    assert restored is not None and "unetv2_closed_image" in restored.metadata, restored.metadata
    assert not seg.restore_button.native.isHidden()  # the newer painted one is kept for Restore in its place
    reopened = viewer.add_image(pixels, name="reopened", rgb=True)
    qtbot.waitUntil(lambda: layer_of(viewer, reopened, MASK) is not None, timeout=5000)
    assert len(layers_of(viewer, reopened, MASK)) == 1 and same_layer(layer_of(viewer, reopened, MASK), restored)


def test_a_split_of_a_reopened_image_makes_new_images(make_napari_viewer, qtbot, isolated_home):
    """Cold review of session 37: an image reopened (taking back its painted mask) had no recorded pixel grid, so its
    Split RGB channels kept its id and its mask."""
    from napari.layers._layer_actions import _split_rgb
    from test_gui_findings import segment, two_samples_and_segment

    from napari_unetv2.widgets._layers import MASK, layer_of

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    seg.image.value = first
    segment(qtbot, seg)
    layer_of(viewer, first, MASK).paint((30, 30), 1)
    pixels = np.asarray(first.data).copy()
    viewer.layers.remove(first)
    qtbot.waitUntil(lambda: any(x.name.endswith("(image closed)") for x in viewer.layers), timeout=5000)
    reopened = viewer.add_image(pixels, name="reopened", rgb=True)
    qtbot.waitUntil(lambda: layer_of(viewer, reopened, MASK) is not None, timeout=5000)
    viewer.layers.selection.active = reopened
    before = set(map(id, viewer.layers))
    _split_rgb(viewer.layers)
    channels = [layer for layer in viewer.layers if id(layer) not in before]
    assert len(channels) == 3 and all(layer_of(viewer, channel, MASK) is None for channel in channels)


def test_images_hidden_while_the_session_says_its_image_failed_stay_hidden_when_another_closes(make_napari_viewer):
    """Cold review of session 37: the folder session hides every image while it says its image could not be read
    (another image was taken for it); closing some other image brought one back."""
    from napari_unetv2.widgets._layers import follow_removed_images, forget_removed_image, hide_every_image, image_id

    viewer = make_napari_viewer()
    follow_removed_images(viewer)
    images = [viewer.add_image(np.full((40, 50, 3), value, np.uint8), name=f"image {value}", rgb=True)
              for value in (10, 20, 30)]
    for image in images:
        image_id(image)
    assert hide_every_image(viewer)
    viewer.layers.remove(images[0])
    forget_removed_image(viewer, images[0])
    assert not any(image.visible for image in images[1:])


def test_a_proposal_given_back_beside_one_taken_back_is_the_images_one_proposal(make_napari_viewer):
    """Cold review of session 37: the session's image shown again took back its painted proposal and then added the
    kept one beside it (a second proposal, now a stray layer)."""
    from napari_unetv2.widgets._layers import PROPOSAL, layers_of, start_proposal

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((40, 50), np.uint8), name="frame")
    model = np.zeros((40, 50), np.uint8)
    painted = model.copy()
    painted[5:9, 5:9] = 1
    first = start_proposal(viewer, image, painted, model, "v")
    again = start_proposal(viewer, image, painted, model, "v")
    assert again is first and layers_of(viewer, image, PROPOSAL) == [first]
