"""Replay source: image folders and video files, pacing, loop/once, bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import (
    FramePacer,
    FrameSkipped,
    SourceFinished,
    open_source,
)
from rope_inspect.acquisition.replay import ReplaySource, header_size
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import ReplaySourceConfig
from rope_inspect.errors import SourceError

H, W = 12, 16


def _image(value: int) -> np.ndarray:
    """An RGB image whose red channel holds `value` and blue channel 200 - value."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = value
    rgb[..., 2] = 200 - value
    return rgb


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _source(path: Path, **overrides: object) -> ReplaySource:
    values: dict[str, object] = {"kind": "replay", "path": path, "realtime": False}
    values.update(overrides)
    source = ReplaySource(ReplaySourceConfig.model_validate(values))
    source.open()
    return source


def _names(source: ReplaySource, n: int) -> list[str]:
    slot = np.zeros(source.frame_shape, np.uint8)
    names = []
    for _ in range(n):
        info = source.read_into(slot, 1.0)
        assert info is not None and info.source_name is not None
        names.append(Path(info.source_name).name)
    return names


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _save(tmp_path / "b" / "001.png", _image(30))
    _save(tmp_path / "a" / "002.bmp", _image(20))
    _save(tmp_path / "a" / "001.png", _image(10))
    _save(tmp_path / "c.tif", _image(40))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_is_replayed_recursively_in_sorted_order_as_rgb(folder: Path) -> None:
    source = _source(folder)
    assert source.frame_shape == (H, W, 3)
    slot = np.zeros(source.frame_shape, np.uint8)
    reds = []
    for expected in ("a/001.png", "a/002.bmp", "b/001.png", "c.tif"):
        info = source.read_into(slot, 1.0)
        assert info is not None and info.source_name == str(folder / expected)
        reds.append(int(slot[0, 0, 0]))
        assert int(slot[0, 0, 2]) == 200 - reds[-1]
    assert reds == [10, 20, 30, 40]
    with pytest.raises(SourceFinished):
        source.read_into(slot, 1.0)


def test_loop_starts_again(folder: Path) -> None:
    source = _source(folder, loop=True)
    assert _names(source, 6) == [
        "001.png",
        "002.bmp",
        "001.png",
        "c.tif",
        "001.png",
        "002.bmp",
    ]


def test_wrong_size_and_unreadable_files_are_counted_skipped_and_named(
    tmp_path: Path,
) -> None:
    _save(tmp_path / "001.png", _image(10))
    _save(tmp_path / "002.png", np.zeros((H + 1, W, 3), np.uint8))
    (tmp_path / "003.png").write_bytes(b"\x89PNG broken")
    _save(tmp_path / "004.png", _image(40))
    source = _source(tmp_path)
    slot = np.zeros(source.frame_shape, np.uint8)
    assert source.read_into(slot, 1.0) is not None
    with capture_logs() as logs:
        for reason in ("wrong_size", "unreadable"):
            with pytest.raises(FrameSkipped, match=reason):
                source.read_into(slot, 1.0)
    assert [e["file"] for e in logs] == [
        str(tmp_path / "002.png"),
        str(tmp_path / "003.png"),
    ]
    assert source.counters == {"wrong_size": 1, "unreadable": 1}
    info = source.read_into(slot, 1.0)
    assert info is not None and int(slot[0, 0, 0]) == 40


def test_frame_size_is_the_most_common_one_not_the_first_file(
    tmp_path: Path,
) -> None:
    """A small odd file sorting first used to set the size: every real frame skipped."""
    _save(tmp_path / "000.png", np.zeros((10, 30, 3), np.uint8))
    for i, suffix in enumerate((".png", ".jpg", ".bmp", ".png"), start=1):
        _save(tmp_path / f"{i:03d}{suffix}", _image(10 * i))
    with capture_logs() as logs:
        source = _source(tmp_path)
    assert source.frame_shape == (H, W, 3)
    (odd,) = [e for e in logs if e["event"] == "replay_odd_sizes"]
    assert odd["log_level"] == "warning"
    assert odd["frame_size"] == f"{W}x{H}"
    assert odd["files"] == [f"{tmp_path / '000.png'} 30x10"]
    slot = np.zeros(source.frame_shape, np.uint8)
    with pytest.raises(FrameSkipped, match="wrong_size"):
        source.read_into(slot, 1.0)
    assert len(_names(source, 4)) == 4


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_header_size_matches_the_decoded_image(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"frame{suffix}"
    _save(path, np.zeros((37, 53, 3), np.uint8))
    assert header_size(path) == (37, 53)
    (tmp_path / "cut.png").write_bytes(path.read_bytes()[:10])
    assert header_size(tmp_path / "cut.png") is None


def test_video_file_is_replayed_and_looped(tmp_path: Path) -> None:
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (W * 4, H * 4)
    )
    for value in (20, 90, 160):
        writer.write(
            cv2.cvtColor(
                np.kron(_image(value), np.ones((4, 4, 1), np.uint8)), cv2.COLOR_RGB2BGR
            )
        )
    writer.release()
    source = _source(path, loop=True)
    assert source.frame_shape == (H * 4, W * 4, 3)
    slot = np.zeros(source.frame_shape, np.uint8)
    reds = []
    for _ in range(4):
        info = source.read_into(slot, 1.0)
        assert info is not None
        reds.append(int(np.median(slot[..., 0])))
    assert [abs(r - e) <= 6 for r, e in zip(reds, (20, 90, 160, 20), strict=True)] == [
        True
    ] * 4
    assert info is not None and info.source_name == f"{path}#0"
    source.close()


def test_missing_or_empty_paths_are_explained(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist") as err:
        _source(tmp_path / "nowhere")
    assert "source.path" in err.value.hint
    with pytest.raises(SourceError, match="no images"):
        _source(tmp_path)
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot read video"):
        _source(tmp_path / "x.mp4")


def test_pacer_keeps_an_absolute_schedule() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = FramePacer(10.0, realtime=True, clock=lambda: now[0], sleep=sleep)
    assert pacer.wait(1.0)  # the first frame is due at once
    now[0] += 0.03  # processing took 30 ms
    assert pacer.wait(1.0)
    assert slept == [pytest.approx(0.07)]
    assert not pacer.wait(0.05)  # next frame due in 0.1 s: timeout first
    assert pacer.wait(1.0)
    assert now[0] == pytest.approx(100.2)


def test_replay_runs_through_the_acquirer_to_the_end(folder: Path) -> None:
    cfg = ReplaySourceConfig(kind="replay", path=folder, fps=200)
    source = open_source(cfg)
    source.open()
    ring = FrameRing(8, source.frame_shape)
    acquirer = Acquirer(source, ring)
    acquirer.start()
    assert acquirer.wait_finished(10.0)
    assert acquirer.stop(2.0)
    names = []
    while (frame := ring.get(0.1)) is not None:
        names.append(Path(frame.source_name or "").name)
        ring.release(frame)
    assert names == ["001.png", "002.bmp", "001.png", "c.tif"]
