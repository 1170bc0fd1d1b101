"""Replay of a looping image folder from decoded images kept in memory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from rope_inspect.acquisition.base import FrameSkipped
from rope_inspect.acquisition.replay import ReplaySource
from rope_inspect.config import ReplaySourceConfig

H, W = 24, 32


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _noise(seed: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _source(path: Path, **overrides: object) -> ReplaySource:
    values: dict[str, object] = {
        "kind": "replay",
        "path": path,
        "realtime": False,
        "loop": True,
    }
    values.update(overrides)
    source = ReplaySource(ReplaySourceConfig.model_validate(values))
    source.open()
    return source


class DecodeCounter:
    """Counts cv2.imread calls per file while the test runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real = cv2.imread

        def imread(name: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
            self.calls.append(Path(name).name)
            return real(name, flags)

        monkeypatch.setattr(cv2, "imread", imread)


def _replay(source: ReplaySource, n: int) -> list[tuple[str, np.ndarray | str]]:
    """n reads: (file name, copy of the frame) or (file name of a skip, reason)."""
    slot = np.zeros(source.frame_shape, np.uint8)
    out: list[tuple[str, np.ndarray | str]] = []
    for _ in range(n):
        try:
            info = source.read_into(slot, 1.0)
        except FrameSkipped as skip:
            out.append(("skipped", skip.reason))
            continue
        assert info is not None and info.source_name is not None
        out.append((Path(info.source_name).name, slot.copy()))
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _save(tmp_path / "001.png", _noise(1))
    _save(tmp_path / "002.jpg", _noise(2))
    _save(tmp_path / "003.bmp", _noise(3))
    _save(tmp_path / "004.png", _noise(4))
    return tmp_path


def test_kept_frames_are_identical_to_decoding_and_each_file_is_decoded_once(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _replay(_source(folder, decoded_cache_mb=0), 10)
    counter = DecodeCounter(monkeypatch)
    kept = _replay(_source(folder), 10)
    assert counter.calls == ["001.png", "002.jpg", "003.bmp", "004.png"]
    assert [name for name, _ in kept] == [name for name, _ in decoded]
    for (_, a), (_, b) in zip(kept, decoded, strict=True):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        assert np.array_equal(a, b)
    assert not np.array_equal(kept[0][1], kept[1][1])  # not one frame repeated


def test_budget_too_small_decodes_per_frame_and_says_how_to_raise_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = (700, 500)  # 1.0 MiB decoded each: 4 of them need 4 MiB (the rest are odd)
    for i in range(4):
        _save(folder / "big" / f"{i}.png", _noise(10 + i, big))
    with capture_logs() as logs:
        source = _source(folder / "big", decoded_cache_mb=3)
    (note,) = [e for e in logs if e["event"] == "replay_decodes_per_frame"]
    assert note["decoded_mb"] == 5  # 4 x 1.0013 MiB, rounded up
    assert "source.decoded_cache_mb to decoded_mb or more" in note["hint"]
    counter = DecodeCounter(monkeypatch)
    _replay(source, 8)
    assert len(counter.calls) == 8
    counter.calls.clear()
    _replay(_source(folder / "big", decoded_cache_mb=5), 8)
    assert len(counter.calls) == 4


def test_once_through_or_zero_budget_keeps_nothing_and_logs_nothing(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = DecodeCounter(monkeypatch)
    with capture_logs() as logs:
        _replay(_source(folder, decoded_cache_mb=0), 8)
        _replay(_source(folder, loop=False), 4)
    assert len(counter.calls) == 12
    assert not [e for e in logs if e["event"] == "replay_decodes_per_frame"]


def test_bad_files_are_skipped_counted_and_named_on_every_pass_but_read_once(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(folder / "002a.png", _noise(5, (H + 2, W)))
    good = (folder / "001.png").read_bytes()
    (folder / "003a.png").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "004a.png").write_bytes(b"\x89PNG broken")
    source = _source(folder)
    counter = DecodeCounter(monkeypatch)
    with capture_logs() as logs:
        frames = _replay(source, 14)
    assert len(counter.calls) == 7
    skipped = [e for e in logs if e["event"] == "replay_frame_skipped"]
    assert [(Path(e["file"]).name, e["reason"]) for e in skipped] == 2 * [
        ("002a.png", "wrong_size"),
        ("003a.png", "unreadable"),
        ("004a.png", "unreadable"),
    ]
    assert skipped[0]["size"] == (H + 2, W) and skipped[0]["expected"] == (H, W)
    assert source.counters == {"wrong_size": 2, "unreadable": 4}
    names = [name for name, _ in frames]
    pass_names = ["001.png", "002.jpg", "skipped", "003.bmp", "skipped", "004.png"]
    assert names == 2 * [*pass_names, "skipped"]


def test_cache_budget_is_a_checked_config_key(tmp_path: Path) -> None:
    cfg = {"kind": "replay", "path": tmp_path}
    assert ReplaySourceConfig.model_validate(cfg).decoded_cache_mb == 512
    with pytest.raises(ValidationError):
        ReplaySourceConfig.model_validate({**cfg, "decoded_cache_mb": -1})
