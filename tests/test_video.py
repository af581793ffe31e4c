"""Tests of the video frame extractor (monodepth2_geopt/tools/video.py, extract_frames.py).

A synthetic 25 fps clip (written here with PyAV) has exactly known content:
frames 0-19 a texture panning 4 px/frame, 20-23 four copies of frame 19 (static),
24-33 the pan continuing, then a hard cut at frame 34 (t = 1.36 s) to a darker texture panning
for 26 frames (34-59). 60 frames, 2.4 s.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from monodepth2_geopt.tools.video import (  # noqa: E402
    ExtractOptions,
    VideoExtractionError,
    extract_video,
    extract_videos,
    find_videos,
    output_size,
    probe_video,
    split_entries,
)
from extract_frames import main  # noqa: E402  (the script's entry point: parse -> build -> call)
from monodepth2_geopt.errors import InputError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VIDEOS = SHARED_DATA / "videos"

H, W = 96, 128
N_FRAMES = 60
CUT_FRAME = 34


def _texture(seed, h, w, lo, hi):
    rng = np.random.default_rng(seed)
    small = rng.uniform(lo, hi, size=(h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def synthetic_frames():
    a = _texture(1, H, W * 4, 120, 255)
    b = _texture(2, H, W * 4, 0, 110)
    frames, pos = [], 0
    for _ in range(20):
        frames.append(a[:, pos:pos + W])
        pos += 4
    frames += [frames[-1]] * 4                      # 20..23: static copies of frame 19
    for _ in range(10):
        frames.append(a[:, pos:pos + W])
        pos += 4
    pos = 0
    for _ in range(26):                             # 34..59: after the hard cut
        frames.append(b[:, pos:pos + W])
        pos += 4
    assert len(frames) == N_FRAMES
    return frames


def write_video(path, frames, fps=25):
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"crf": "10"}
    for f in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


@pytest.fixture(scope="module")
def syn_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "syn.mp4"
    write_video(path, synthetic_frames())
    return path


def check_split(out, lines, stride=1):
    """Every split entry has its target and both neighbours on disk, in the same folder."""
    assert lines
    for line in lines:
        folder, idx = line.split()
        idx = int(idx)
        for off in (-stride, 0, stride):
            files = list((out / folder).glob(f"{idx + off:06d}.*"))
            assert len(files) == 1, (line, off)


def read_split(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# synthetic video: exact behaviour
# ------------------------------------------------------------------------------------------------
def test_static_frames_dropped_and_cut_detected(syn_video, tmp_path):
    summary = extract_videos(syn_video, tmp_path, ExtractOptions(val_fraction=0), progress=False)
    (r,) = summary.videos
    assert (r.decoded, r.sampled, r.dropped_static, r.kept) == (60, 60, 4, 56)
    assert r.cut_times == pytest.approx([CUT_FRAME / 25])
    assert [(s.folder, s.num_frames) for s in r.segments] == [("syn_seg00", 30), ("syn_seg01", 26)]
    # the static copies (t = 0.80..0.92) are gone, the frame they copy (t = 0.76) is kept
    assert r.segments[0].times[19] == pytest.approx(0.76)
    assert r.segments[0].times[20] == pytest.approx(0.96)
    assert r.segments[1].times[0] == pytest.approx(1.36)
    for seg in r.segments:
        names = sorted(p.name for p in (tmp_path / seg.folder).iterdir())
        assert names == [f"{i:06d}.jpg" for i in range(seg.num_frames)]
    with Image.open(tmp_path / "syn_seg00" / "000000.jpg") as im:
        assert im.size == (W, H)
    train = read_split(tmp_path / "train_files.txt")
    assert train == summary.train
    assert len(train) == (30 - 2) + (26 - 2)
    check_split(tmp_path, train)
    assert not (tmp_path / "val_files.txt").exists()  # the test extracts with val_fraction=0
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())     # no staging left behind
    assert (tmp_path / "extraction_summary.json").is_file()


def test_fps_resampling_by_timestamps(syn_video, tmp_path):
    r = extract_video(syn_video, tmp_path, ExtractOptions(fps=10, static_threshold=0))
    assert r.decoded == 60 and r.sampled == r.kept == 24          # targets 0.0, 0.1, ..., 2.3 s
    times = [t for s in r.segments for t in s.times]
    expected = [0, .12, .2, .32, .4, .52, .6, .72, .8, .92, 1.0, 1.12, 1.2, 1.32,
                1.4, 1.52, 1.6, 1.72, 1.8, 1.92, 2.0, 2.12, 2.2, 2.32]
    assert times == pytest.approx(expected)
    # the cut is detected at the native rate and still splits the resampled frames
    assert [s.num_frames for s in r.segments] == [14, 10]


def test_fps_resampling_with_static_filter(syn_video, tmp_path):
    # at 10 fps the frames at 0.80 s (copy of 0.76) and 0.92 s (same copy) are sampled: the first
    # differs from the last kept frame (0.72 s), the second is identical to it and is dropped
    r = extract_video(syn_video, tmp_path, ExtractOptions(fps=10))
    assert (r.sampled, r.dropped_static, r.kept) == (24, 1, 23)


def test_fps_not_upsampled(syn_video, tmp_path):
    r = extract_video(syn_video, tmp_path, ExtractOptions(fps=60, static_threshold=0))
    assert r.sampled == r.kept == 60


def test_trimming(syn_video, tmp_path):
    r = extract_video(syn_video, tmp_path / "a", ExtractOptions(start=0.4, end=1.2, static_threshold=0))
    assert r.decoded == r.kept == 20                               # frames 10..29
    (seg,) = r.segments
    assert seg.folder == "syn" and seg.times[0] == pytest.approx(0.4) and seg.times[-1] == pytest.approx(1.16)
    r = extract_video(syn_video, tmp_path / "b", ExtractOptions(start=0.4, end=1.2))
    assert (r.kept, r.dropped_static) == (16, 4)
    r = extract_video(syn_video, tmp_path / "c", ExtractOptions(start=1.0, static_threshold=0))
    assert r.decoded == 35 and r.segments[0].times[0] == pytest.approx(1.0)
    assert r.cut_times == pytest.approx([1.36])


@pytest.mark.parametrize(
    "kwargs, size",
    [
        (dict(max_side=64), (64, 48)),
        (dict(max_side=1000), (W, H)),                      # never upscaled by max_side
        (dict(width=100), (100, 75)),
        (dict(height=48), (64, 48)),
        (dict(width=100, height=100), (100, 75)),           # aspect preserving: fit inside
        (dict(width=100, height=100, keep_aspect=False), (100, 100)),
    ],
)
def test_resize(syn_video, tmp_path, kwargs, size):
    r = extract_video(syn_video, tmp_path, ExtractOptions(end=0.2, **kwargs))
    with Image.open(tmp_path / r.segments[0].folder / "000000.jpg") as im:
        assert im.size == size


def test_output_size_rules():
    assert output_size(960, 540, ExtractOptions(max_side=640).validate()) == (640, 360)
    assert output_size(960, 540, ExtractOptions(width=640).validate()) == (640, 360)
    assert output_size(960, 540, ExtractOptions(width=640, height=192).validate()) == (341, 192)


def test_png_stride_and_val_split(syn_video, tmp_path):
    summary = extract_videos(syn_video, tmp_path,
                             ExtractOptions(img_ext="png", stride=2, val_fraction=0.25), progress=False)
    assert sorted(p.suffix for p in (tmp_path / "syn_seg00").iterdir()) == [".png"] * 30
    train = read_split(tmp_path / "train_files.txt")
    val = read_split(tmp_path / "val_files.txt")
    # each segment holds out its last quarter of targets, and the 2 * stride targets before it are dropped
    assert len(val) == round(0.25 * 26) + round(0.25 * 22)
    assert len(train) + len(val) == (30 - 4) + (26 - 4) - 2 * 2 * 2
    assert not set(train) & set(val)
    for folder in {line.split()[0] for line in val}:  # no frame shared between a train and a val triplet
        used = lambda lines: {int(ln.split()[1]) + d for ln in lines if ln.split()[0] == folder for d in (-2, 0, 2)}
        assert not used(train) & used(val)
    check_split(tmp_path, train + val, stride=2)
    assert (train, val) == (summary.train, summary.val)


def test_split_entries():
    assert split_entries("v", 5) == ["v 1", "v 2", "v 3"]
    assert split_entries("v", 5, stride=2) == ["v 2"]
    assert split_entries("v", 2) == []


def test_cut_detection_off_and_short_segments(syn_video, tmp_path):
    r = extract_video(syn_video, tmp_path / "a", ExtractOptions(cut_threshold=0, cut_hist_threshold=0))
    assert r.cut_times == [] and [(s.folder, s.num_frames) for s in r.segments] == [("syn", 56)]
    # a segment shorter than min_segment_frames is discarded
    r = extract_video(syn_video, tmp_path / "b", ExtractOptions(min_segment_frames=28))
    assert [(s.folder, s.num_frames) for s in r.segments] == [("syn", 30)] and r.dropped_short == 26
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["syn"]


def test_existing_output_needs_overwrite(syn_video, tmp_path):
    extract_video(syn_video, tmp_path, ExtractOptions())
    with pytest.raises(VideoExtractionError, match="already exists"):
        extract_video(syn_video, tmp_path, ExtractOptions())
    # overwriting with different settings replaces the old segment folders
    r = extract_video(syn_video, tmp_path, ExtractOptions(cut_threshold=0, cut_hist_threshold=0, overwrite=True))
    assert [s.folder for s in r.segments] == ["syn"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]


def test_folder_input_recursive(syn_video, tmp_path):
    src = tmp_path / "src"
    (src / "day1").mkdir(parents=True)
    (src / "day2" / "deep").mkdir(parents=True)
    shutil.copy(syn_video, src / "day1" / "clip.mp4")
    shutil.copy(syn_video, src / "day2" / "deep" / "clip.MOV")
    (src / "notes.txt").write_text("not a video")
    assert [p.name for p in find_videos(src)] == ["clip.mp4", "clip.MOV"]
    summary = extract_videos(src, tmp_path / "out", ExtractOptions(end=1.0, val_fraction=0), progress=False)
    assert [r.name for r in summary.videos] == ["day1_clip", "day2_deep_clip"]
    assert len(summary.train) == 2 * (25 - 4 - 2)
    check_split(tmp_path / "out", summary.train)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
@pytest.fixture()
def corrupt_video(tmp_path):
    path = tmp_path / "broken clip.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


def test_corrupt_file_error_names_file(corrupt_video, tmp_path):
    with pytest.raises(VideoExtractionError, match="cannot decode video file") as info:
        extract_videos(corrupt_video, tmp_path / "out", progress=False)
    assert str(corrupt_video) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(VideoExtractionError, match="input not found"):
        extract_videos(tmp_path / "nope.mp4", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoExtractionError, match="no video files found"):
        extract_videos(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    with pytest.raises(VideoExtractionError, match="no video files found"):
        extract_videos(tmp_path / "text", tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fps=0), "fps"),
        (dict(fps=float("nan")), "fps"),
        (dict(start=-1), "start"),
        (dict(start=2, end=1), "end"),
        (dict(width=0), "width"),
        (dict(max_side=64, width=32), "either"),
        (dict(static_threshold=-1), "static_threshold"),
        (dict(cut_hist_threshold=2), "cut_hist_threshold"),
        (dict(stride=0), "stride"),
        (dict(width="wide"), "width"),
        (dict(max_side=10.5), "max_side"),
        (dict(jpeg_quality=101), "jpeg_quality"),
        (dict(img_ext="gif"), "img_ext"),
        (dict(val_fraction=1.0), "val_fraction"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(VideoExtractionError, match=match):
        ExtractOptions(**kwargs).validate()


def test_truncated_file_keeps_decodable_frames(tmp_path):
    full = tmp_path / "full.mkv"              # Matroska stays readable when cut short
    write_video(full, synthetic_frames())
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    r = extract_video(cut, tmp_path / "out", ExtractOptions(static_threshold=0))
    assert 0 < r.decoded < N_FRAMES and r.kept == r.decoded


def test_skip_errors_in_folder(syn_video, corrupt_video, tmp_path):
    shutil.copy(syn_video, corrupt_video.parent / "good.mp4")
    with pytest.raises(VideoExtractionError, match="broken clip.mp4"):
        extract_videos(corrupt_video.parent, tmp_path / "o1", ExtractOptions(end=0.5), progress=False)
    with pytest.warns(UserWarning, match="broken clip.mp4"):
        summary = extract_videos(corrupt_video.parent, tmp_path / "o2",
                                 ExtractOptions(end=0.5, skip_errors=True), progress=False)
    assert [r.name for r in summary.videos] == ["good"] and len(summary.skipped) == 1


def test_cli_exit_codes(syn_video, corrupt_video, tmp_path, capsys):
    with pytest.raises(InputError) as err:  # run_cli prints it as one line and exits 2 (test_script_entry_point)
        main([str(corrupt_video), "--out", str(tmp_path / "o"), "--quiet"])
    assert str(corrupt_video) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="fps"):
        main([str(syn_video), "--out_dir", str(tmp_path / "o"), "--fps", "-3", "--quiet"])
    assert main([str(syn_video), "--out", str(tmp_path / "o"), "--end", "0.6", "--quiet"]) == 0
    assert "train_files.txt: 10 entries, val_files.txt: 1" in capsys.readouterr().out  # 13 targets: 1 held out, 2 dropped


def test_script_entry_point(corrupt_video, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "extract_frames.py"), str(corrupt_video),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot decode video file '{corrupt_video}': Invalid data found when processing input"]


# ------------------------------------------------------------------------------------------------
# real videos
# ------------------------------------------------------------------------------------------------
def _real(name):
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"real test video not available: {path}")
    return path


def test_real_dashcam_video(tmp_path):
    video = _real("solidWhiteRight.mp4")
    info = probe_video(video)
    assert (info["width"], info["height"], info["fps"], info["num_frames"]) == (960, 540, 25.0, 221)
    r = extract_video(video, tmp_path, ExtractOptions(fps=10, max_side=320))
    assert (r.width, r.height, r.source_fps, r.decoded) == (960, 540, 25.0, 221)
    assert r.cut_times == [] and r.kept == 89 and [s.folder for s in r.segments] == ["solidWhiteRight"]
    with Image.open(tmp_path / "solidWhiteRight" / "000088.jpg") as im:
        assert im.size == (320, 180)


def test_real_video_with_scene_cuts(tmp_path):
    video = _real("bikes.mp4")
    summary = extract_videos(video, tmp_path, ExtractOptions(max_side=320), progress=False)
    (r,) = summary.videos
    assert r.decoded == 250
    # hard cuts at frames 30, 76, 137, 187 and 242 (checked by eye)
    assert r.cut_times == pytest.approx([30 / 25, 76 / 25, 137 / 25, 187 / 25, 242 / 25])
    assert [s.folder for s in r.segments] == [f"bikes_seg{i:02d}" for i in range(6)]
    assert r.kept + r.dropped_static == 250
    check_split(tmp_path, summary.train)
