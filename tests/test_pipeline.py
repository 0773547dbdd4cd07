"""The overlapped batch pipeline writes exactly what the sequential loop writes, keeps memory bounded and
leaves no thread behind."""
import csv
import threading
import time

import numpy as np
import pytest

from napari_unetv2._sample_data import load_sample
from napari_unetv2.files import read_image
from napari_unetv2.inference.batch import predict_folder
from napari_unetv2.inference.pipeline import OrderedWriter, PredictionStream


@pytest.fixture
def folder(tmp_path, sample_images):
    src = sample_images
    image = load_sample("polyp")[0]
    from napari_unetv2.files import write_png_atomic

    write_png_atomic(src / "gray.png", image[..., 0])  # another size and a grayscale frame
    write_png_atomic(src / "crop.png", image[:200, :240])
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"\x89PNG broken")
    return src


def outputs(out):
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "summary.csv"}
    with open(out / "summary.csv") as fh:
        rows = [{k: v for k, v in r.items() if k not in ("seconds", "finished_at")} for r in csv.DictReader(fh)]
    return files, rows


@pytest.mark.parametrize("tile", [None, 256])
def test_pipeline_writes_exactly_what_the_sequential_loop_writes(predictor, folder, tmp_path, tile):
    sequential = predict_folder(predictor, folder, tmp_path / "seq", tile=tile, save_probabilities=True,
                                overlap_io=False)
    overlapped = predict_folder(predictor, folder, tmp_path / "pipe", tile=tile, save_probabilities=True)
    assert sequential.count("done") == overlapped.count("done") == 5 and overlapped.count("error") == 1
    assert outputs(tmp_path / "seq") == outputs(tmp_path / "pipe")  # byte for byte, summary in the same order


def test_batched_frames_give_the_same_masks(predictor, folder, tmp_path):
    predict_folder(predictor, folder, tmp_path / "one", save_probabilities=True)
    predict_folder(predictor, folder, tmp_path / "four", save_probabilities=True, batch_size=4)
    for mask in (tmp_path / "one").glob("*.png"):
        assert np.array_equal(read_image(mask), read_image(tmp_path / "four" / mask.name)), mask.name
    for prob in (tmp_path / "one").glob("*_prob.tif"):
        # oneDNN may pick other kernels for a batch of 4: the last bits can differ, nothing more
        assert np.abs(read_image(prob) - read_image(tmp_path / "four" / prob.name)).max() < 1e-5


def test_the_summary_gives_each_image_the_models_time_on_it(predictor, folder, tmp_path):
    """Session 27's trial: images predicted ahead (read ahead, batched, or by another stream) had 0.000 seconds: the
    summary measured the wait for their result."""
    predict_folder(predictor, folder, tmp_path / "four", batch_size=4)
    with open(tmp_path / "four" / "summary.csv") as fh:
        done = [row for row in csv.DictReader(fh) if row["status"] == "done"]
    assert len(done) == 5 and all(float(row["seconds"]) > 0.001 for row in done), done


def test_read_ahead_is_bounded_and_stops_on_close(predictor, tmp_path):
    image = load_sample("polyp")[0][:64, :64]
    reads = []

    def read(path):
        reads.append(path)
        return image

    paths = [tmp_path / f"{i}.png" for i in range(12)]
    before = threading.active_count()
    stream = PredictionStream(predictor, paths, prefetch=2, read=read)
    time.sleep(0.5)
    assert len(reads) <= 3  # two waiting in the queue, one held by the reader
    first = stream.result(paths[0])
    assert first.mask.shape == (64, 64)
    stream.close()
    assert len(reads) < len(paths)
    assert threading.active_count() == before


@pytest.mark.parametrize("parallel", [False, True])
def test_stream_raises_where_the_loop_would_and_predicts_unlisted_paths(predictor, tmp_path, parallel):
    """Both streams: a read error is raised at its own path, the next path is still predicted exactly as
    ``Predictor.predict`` (one thread, the tests' setting and the parallel streams' share), and a path
    that was not listed is predicted on the spot."""
    from napari_unetv2.inference.pipeline import ParallelPredictionStream

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    image = load_sample("polyp")[0][:96, :96]

    def read(path):
        if path == bad:
            raise ValueError("cannot read")
        return image

    expected = predictor.predict(image, threads=1)
    stream = (ParallelPredictionStream(predictor, [bad, good], [1, 1], read=read) if parallel
              else PredictionStream(predictor, [bad, good], read=read))
    with stream:
        with pytest.raises(ValueError, match="cannot read"):
            stream.result(bad)
        for result in (stream.result(good), stream.result(tmp_path / "other.png")):
            assert np.array_equal(result.mask, expected.mask)
            assert np.array_equal(result.probability, expected.probability)


@pytest.mark.parametrize("parallel", [False, True])
def test_an_unlisted_path_does_not_throw_away_the_predictions_made_ahead(predictor, tmp_path, monkeypatch, parallel):
    """A --continue run asked for a mask deleted while it ran: the one-stream pipeline advanced past every
    prediction made ahead, discarding them, and made each one again (21 images, 41 forward passes)."""
    from napari_unetv2.inference.pipeline import ParallelPredictionStream

    image = load_sample("polyp")[0][:96, :96]
    paths = [tmp_path / f"im{i}.png" for i in range(6)]
    passes = []
    for name in ("predict", "predict_prepared"):
        real = getattr(predictor, name)

        def counted(x, *args, _real=real, **kwargs):
            passes.append(len(x) if isinstance(x, list) else 1)
            return _real(x, *args, **kwargs)

        monkeypatch.setattr(predictor, name, counted)
    stream = (ParallelPredictionStream(predictor, paths, [1, 1], read=lambda p: image) if parallel
              else PredictionStream(predictor, paths, read=lambda p: image))
    with stream:
        stream.result(paths[0])
        stream.result(tmp_path / "deleted since.png")
        for path in paths[1:]:
            stream.result(path)
    assert sum(passes) == len(paths) + 1


def test_writer_runs_in_order_and_reports_the_first_error():
    done = []

    def fail():
        raise OSError("disk full")

    writer = OrderedWriter(pending=2)
    for i in range(5):
        writer.submit(done.append, i)
    writer.submit(fail)
    writer.submit(done.append, "after the error")  # may raise already, or be skipped
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert done == [0, 1, 2, 3, 4]


def test_cancel_stops_the_pipeline_cleanly(predictor, folder, tmp_path):
    before = threading.active_count()
    calls = []
    summary = predict_folder(predictor, folder, tmp_path / "out", should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert summary.count("error") == 1 and summary.count("done") == 1  # broken.png, crop.png, then stop
    assert threading.active_count() == before
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_written_masks_are_predict_masks_pixel_for_pixel(predictor, folder, tmp_path):
    """The cheaper PNG level and the batch path change no mask pixel: each file reads back as
    ``Predictor.predict(image).mask * 255``, and the summary's foreground fraction is that mask's mean."""
    from napari_unetv2.files import IMAGE_SUFFIXES

    predict_folder(predictor, folder, tmp_path / "out")
    with open(tmp_path / "out" / "summary.csv") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    checked = 0
    for image_path in sorted(folder.iterdir()):
        if image_path.suffix.lower() not in IMAGE_SUFFIXES or image_path.name == "broken.png":
            continue
        expected = predictor.predict(read_image(image_path)).mask
        written = read_image(tmp_path / "out" / f"{image_path.stem}.png")
        assert written.dtype == np.uint8 and np.array_equal(written, expected * 255), image_path.name
        assert rows[image_path.name]["foreground_fraction"] == f"{expected.mean():.5f}"
        checked += 1
    assert checked == 5


def test_summary_is_complete_at_the_end_and_after_a_stop_however_rarely_it_is_rewritten(
        predictor, folder, tmp_path, monkeypatch):
    from napari_unetv2.inference import batch

    monkeypatch.setattr(batch, "SUMMARY_EVERY_S", 1e9)  # only the first image and the end write it
    predict_folder(predictor, folder, tmp_path / "all")
    assert len(outputs(tmp_path / "all")[1]) == 7  # 5 images, broken.png, notes.txt
    calls = []
    summary = predict_folder(predictor, folder, tmp_path / "stop", should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert [r["file"] for r in outputs(tmp_path / "stop")[1]] == [r["file"] for r in summary.rows]


# ---- several images at once on the CPU (ParallelPredictionStream) ----------------------------------------

def test_threads_are_shared_out_evenly_over_the_streams():
    from napari_unetv2.inference.pipeline import split_threads

    assert split_threads(2, 4) == [1, 1]
    assert split_threads(16, 4) == [4, 4, 4, 4]
    assert split_threads(7, 4) == [2, 2, 2, 1]
    assert split_threads(3, 1) == [3]


def test_a_two_thread_budget_runs_two_single_thread_streams(predictor, monkeypatch):
    from napari_unetv2.inference.batch import cpu_streams

    monkeypatch.setattr(predictor, "threads", 2)
    assert cpu_streams(predictor) == [1, 1]
    assert cpu_streams(predictor, streams=1) == [2]
    with pytest.raises(ValueError, match="at least 1"):
        cpu_streams(predictor, streams=0)
    monkeypatch.setattr(predictor, "threads", 1)
    assert cpu_streams(predictor) == [1]  # e.g. napari's worker on 2 cores: the GUI keeps the other


def test_parallel_streams_write_exactly_what_one_image_at_a_time_writes(predictor, folder, tmp_path, monkeypatch):
    """Two images at once, one thread each, give byte-identical files and the same summary (in the same
    order) as the sequential loop with one thread per image."""
    from napari_unetv2.inference import batch

    started = []
    real = batch.ParallelPredictionStream

    def spy(*args, **kwargs):
        started.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "ParallelPredictionStream", spy)
    monkeypatch.setattr(predictor, "threads", 1)
    sequential = predict_folder(predictor, folder, tmp_path / "seq", save_probabilities=True, overlap_io=False)
    monkeypatch.setattr(predictor, "threads", 2)
    parallel = predict_folder(predictor, folder, tmp_path / "par", save_probabilities=True)
    assert started == [[1, 1]]
    assert sequential.count("done") == parallel.count("done") == 5 and parallel.count("error") == 1
    assert outputs(tmp_path / "seq") == outputs(tmp_path / "par")


def test_parallel_stream_is_bounded_in_order_and_stops_on_close(predictor, tmp_path):
    from napari_unetv2.inference.pipeline import ParallelPredictionStream

    images = {tmp_path / f"{i}.png": load_sample("polyp")[0][: 40 + 8 * i, :64] for i in range(12)}
    paths, reads = list(images), []

    def read(path):
        reads.append(path)
        return images[path]

    before = threading.active_count()
    stream = ParallelPredictionStream(predictor, paths, [1, 1], window=3, read=read)
    time.sleep(0.5)
    assert len(reads) <= 3  # nothing beyond the window is started while the caller takes nothing
    assert stream.result(paths[0]).mask.shape == (40, 64)
    assert stream.result(paths[5]).mask.shape == (80, 64)  # paths 1-4 skipped: dropped, in order
    stream.close()
    assert len(set(reads)) == len(reads) < len(paths)  # nothing read twice, the rest never started
    assert threading.active_count() == before


def test_cancel_stops_the_parallel_streams_cleanly(predictor, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(predictor, "threads", 2)
    before = threading.active_count()
    calls = []
    summary = predict_folder(predictor, folder, tmp_path / "out", should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert summary.count("error") == 1 and summary.count("done") == 1
    assert threading.active_count() == before
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("shape", [(120, 150), (60, 70, 3), (60, 70, 4)])
def test_png_writes_read_back_the_same_pixels_with_either_strategy(tmp_path, shape):
    from napari_unetv2.files import write_png_atomic

    rng = np.random.default_rng(0)
    array = (rng.random(shape) > 0.5).astype(np.uint8) * 255
    array[: shape[0] // 2] = 0  # long runs, as in a mask
    write_png_atomic(tmp_path / "default.png", array)
    write_png_atomic(tmp_path / "rle.png", array, compress_level=1, run_length=True)
    for name in ("default.png", "rle.png"):
        assert np.array_equal(read_image(tmp_path / name), array)
    sixteen = (rng.random((20, 30)) * 65535).astype(np.uint16)  # other types still go through imageio
    write_png_atomic(tmp_path / "sixteen.png", sixteen)
    assert np.array_equal(read_image(tmp_path / "sixteen.png"), sixteen)


def test_each_image_runs_on_the_thread_count_of_its_position_whichever_worker_takes_it(tmp_path):
    """An uneven split (7 threads over 4 streams on 8 cores with napari) must not make results depend on
    scheduling: image i always runs on threads[i % 4]."""
    from napari_unetv2.inference.pipeline import ParallelPredictionStream, split_threads

    class Recorder:
        def __init__(self):
            self.calls = {}

        def predict(self, image, threads=None, **kwargs):
            self.calls[image] = threads
            return image

    recorder, threads = Recorder(), split_threads(7, 4)
    paths = [tmp_path / f"{i}.png" for i in range(12)]
    with ParallelPredictionStream(recorder, paths, threads, read=paths.index) as stream:
        assert [stream.result(p) for p in paths] == list(range(12))
    assert recorder.calls == {i: threads[i % 4] for i in range(12)}


def test_worker_failures_of_any_kind_reach_the_caller_and_a_closed_stream_never_hangs(predictor, tmp_path):
    from napari_unetv2.inference.pipeline import ParallelPredictionStream

    class Fatal(BaseException):
        pass

    def read(path):
        raise Fatal("not an Exception")

    paths = [tmp_path / f"{i}.png" for i in range(3)]
    with ParallelPredictionStream(predictor, paths, [1, 1], read=read) as stream:
        with pytest.raises(Fatal):
            stream.result(paths[0])
    stream = ParallelPredictionStream(predictor, paths, [1, 1], window=1, read=read)
    stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        stream.result(paths[2])  # never started: an error, not a wait for ever


@pytest.mark.parametrize("streams", [None, 1])
def test_the_workers_leave_torch_s_default_thread_count_as_the_caller_had_it(predictor, folder, tmp_path, monkeypatch,
                                                                            streams):
    """torch.set_num_threads in any thread also sets the default of threads that start later (napari's
    next worker): after a run with 1-thread streams, or with the 1-thread read-ahead, a new thread still
    gets the caller's count."""
    import torch

    monkeypatch.setattr(predictor, "threads", 2)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        predict_folder(predictor, folder, tmp_path / "out", streams=streams)
        seen = []
        worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert seen == [3]
    finally:
        torch.set_num_threads(before)


def test_streams_are_refused_where_they_cannot_run_before_anything_is_written(predictor, folder, tmp_path):
    for options in ({"overlap_io": False}, {"tile": 256}, {"batch_size": 4}):
        with pytest.raises(ValueError, match="cannot be combined"):
            predict_folder(predictor, folder, tmp_path / "out", streams=2, **options)
    assert not (tmp_path / "out").exists()


def test_from_a_worker_thread_the_streams_leave_a_core_to_the_gui(predictor):
    import torch

    from napari_unetv2.inference.batch import cpu_streams
    from napari_unetv2.inference.threads import restore_default_threads, usable_cores

    seen = []

    def in_worker():
        torch.set_num_threads(2)
        seen.append(cpu_streams(predictor))

    worker = threading.Thread(target=in_worker)
    worker.start()
    worker.join()
    restore_default_threads()
    assert sum(seen[0]) == max(1, min(usable_cores() - 1, 2))


def test_parallel_streams_hold_a_bounded_number_of_pixels_and_never_deadlock(tmp_path):
    """Several streams over huge images needed about 20 bytes per pixel each at once (8 GB for four 100-megapixel
    images): they now hold at most a pixel budget together besides the image the caller waits for next, which always
    runs (a later, smaller one finished first holds budget: waiting would deadlock)."""
    import threading
    import time

    import numpy as np

    from napari_unetv2.inference.pipeline import ParallelPredictionStream

    sides = [40, 10, 10, 60, 10, 30, 30, 10, 50, 10]  # pixels: side * side
    lock, running, most = threading.Lock(), [0], [0]

    class Counting:
        def predict(self, image, threads=None, **kwargs):
            with lock:
                running[0] += image.size
                most[0] = max(most[0], running[0])
            time.sleep(0.01 * len(image))  # bigger images take longer: later small ones finish first
            with lock:
                running[0] -= image.size
            return image.shape

    paths = [tmp_path / f"{i}.png" for i in range(len(sides))]
    read = lambda path: np.zeros((sides[paths.index(path)],) * 2, np.uint8)  # noqa: E731
    budget = 2000
    with ParallelPredictionStream(Counting(), paths, [1, 1, 1, 1], read=read, pixel_budget=budget) as stream:
        assert [stream.result(p) for p in paths] == [(s, s) for s in sides]
    bound = budget + max(s * s for s in sides)  # the budget, besides the image the caller waits for next
    assert stream.most_pixels_at_once <= bound and most[0] <= bound
    with ParallelPredictionStream(Counting(), paths, [1, 1, 1, 1], read=read) as stream:  # the default: side by side
        assert [stream.result(p) for p in paths] == [(s, s) for s in sides]
    assert stream.most_pixels_at_once > budget


def test_a_gpu_batches_frames_by_default_and_the_cpu_does_not():
    """On an H200, `unetv2 predict` at batch 1 reached 0.46 of the bare forward rate: the GPU waited on the CPU.
    Batches are the default there (resize mode only); the CPU keeps batch 1 and its parallel streams."""
    from types import SimpleNamespace

    import torch

    from napari_unetv2.inference.batch import GPU_BATCH, default_batch_size

    def predictor(device, mode="resize"):
        return SimpleNamespace(device=torch.device(device), config=SimpleNamespace(inference_mode=mode))

    assert GPU_BATCH > 1 and default_batch_size(predictor("cuda")) == GPU_BATCH
    assert default_batch_size(predictor("cuda"), tile=512) == 1  # tiles are predicted whole, in order
    assert default_batch_size(predictor("cuda", mode="tile")) == 1
    assert default_batch_size(predictor("cpu")) == 1
