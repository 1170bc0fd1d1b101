"""The real harvesters path against the simulated GenTL producer of genicam (viky.cti).

viky serves three simulated cameras (serials 0, 1, 2) with RGBa8 or Mono8 at a set
frame rate; it has Width/Height/PixelFormat/AcquisitionFrameRate but no exposure,
gain, offsets or digital I/O features.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import FrameInfo, FrameSkipped
from rope_inspect.acquisition.genicam import GenICamSource, simulated_producer
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.config import GenICamSourceConfig
from rope_inspect.errors import SourceError

CTI = simulated_producer()
pytestmark = pytest.mark.skipif(
    CTI is None, reason="genicam's viky.cti is not installed"
)


def _cfg(**overrides: Any) -> GenICamSourceConfig:
    values: dict[str, Any] = {
        "kind": "genicam",
        "cti": CTI,
        "camera": "1",
        "aoi": (0, 0, 200, 160),
        "frame_rate": 50.0,
        "num_buffers": 4,
        "timeout_s": 0.5,
    }
    values.update(overrides)
    return GenICamSourceConfig(**values)


@pytest.fixture
def camera() -> Iterator[GenICamSource]:
    source = GenICamSource(_cfg())
    source.open()
    yield source
    source.close()


def _read(source: GenICamSource, slot: np.ndarray, n: int) -> list[FrameInfo]:
    infos: list[FrameInfo] = []
    while len(infos) < n:
        info = source.read_into(slot, 2.0)
        assert info is not None, "the simulated camera stopped delivering"
        infos.append(info)
    return infos


def test_frames_arrive_with_increasing_ids_and_the_configured_aoi(
    camera: GenICamSource,
) -> None:
    assert camera.frame_shape == (160, 200, 3)
    assert camera.features["Width"] == "set Width=200"
    assert camera.features["OffsetX"] == "missing"  # viky lacks it: logged, skipped
    slot = np.zeros(camera.frame_shape, np.uint8)
    infos = _read(camera, slot, 6)
    ids = [i.camera_frame_id for i in infos]
    assert ids == sorted(set(ids))
    stamps = [i.timestamp_ns for i in infos]
    assert stamps == sorted(stamps)
    assert slot.any()


def test_slot_copy_is_independent_of_the_driver_buffer(camera: GenICamSource) -> None:
    captured: list[Any] = []
    ia = camera._ia
    real_fetch = ia.fetch

    def spying_fetch(**kwargs: Any) -> Any:
        raw = real_fetch(**kwargs)
        captured.append(raw.raw_buffer)  # keeps the driver memory alive
        return raw

    ia.fetch = spying_fetch
    slot = np.zeros(camera.frame_shape, np.uint8)
    _read(camera, slot, 1)
    before = slot.copy()
    driver = np.frombuffer(captured[-1], np.uint8)
    assert not np.shares_memory(driver, slot)
    # the buffer went back to the driver; stop the stream so only we write to it,
    # then scribble over it as the camera would with the next frame
    camera.stop_streaming()
    ctypes.memset(driver.__array_interface__["data"][0], 0x5A, 200 * 160 * 4)
    assert np.array_equal(slot, before)
    assert (driver[: 200 * 160 * 4] == 0x5A).all()


def test_stopped_acquisition_times_out_without_hanging_and_restarts(
    camera: GenICamSource,
) -> None:
    slot = np.zeros(camera.frame_shape, np.uint8)
    _read(camera, slot, 2)
    camera.stop_streaming()
    started = time.monotonic()
    assert camera.read_into(slot, 0.3) is None
    assert time.monotonic() - started < 5.0
    camera.start_streaming()
    assert len(_read(camera, slot, 2)) == 2


def test_close_and_open_again(camera: GenICamSource) -> None:
    slot = np.zeros(camera.frame_shape, np.uint8)
    _read(camera, slot, 2)
    camera.close()
    camera.close()  # twice is fine
    camera.open()
    assert len(_read(camera, slot, 2)) == 2


def test_mono8_is_delivered_as_grey_rgb() -> None:
    source = GenICamSource(_cfg(pixel_format="Mono8"))
    source.open()
    try:
        slot = np.zeros(source.frame_shape, np.uint8)
        _read(source, slot, 2)
        assert np.array_equal(slot[..., 0], slot[..., 2])
    finally:
        source.close()
        restore = GenICamSource(_cfg(pixel_format="RGBa8"))
        restore.open()
        restore.close()


class _Tampered:
    """A driver buffer whose info fields say something else (truncated, resized...)."""

    def __init__(self, raw: Any, **fields: int) -> None:
        self._raw = raw
        self.parent = self
        for name, value in fields.items():
            setattr(self, name, value)

    def queue_buffer(self, _buffer: Any) -> None:
        self._raw.parent.queue_buffer(self._raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


MONO8_CODE = 0x01080001


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"size_filled": 1000}, "truncated"),
        ({"width": 120}, "wrong_size"),
        ({"pixel_format": MONO8_CODE}, "pixel_format"),
        ({"pixel_format": 0x7FFF0001}, "pixel_format"),
    ],
)
def test_malformed_buffers_are_counted_skipped_and_requeued(
    camera: GenICamSource, fields: dict[str, int], reason: str
) -> None:
    ia = camera._ia
    real_fetch = ia.fetch
    ia.fetch = lambda **kwargs: _Tampered(real_fetch(**kwargs), **fields)
    slot = np.zeros(camera.frame_shape, np.uint8)
    for _ in range(6):  # more than num_buffers: each must go back to the driver
        with pytest.raises(FrameSkipped, match=reason):
            camera.read_into(slot, 2.0)
    assert camera.counters == {reason: 6}
    ia.fetch = real_fetch
    assert len(_read(camera, slot, 3)) == 3


def test_acquirer_counts_frame_id_gaps_when_the_host_stalls() -> None:
    stalls = threading.Event()

    class StallingCamera(GenICamSource):
        def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
            if stalls.is_set():
                stalls.clear()
                time.sleep(0.4)  # all driver buffers fill up; the producer drops
            return super().read_into(slot, timeout_s)

    source = StallingCamera(_cfg(num_buffers=2))
    source.open()
    acquirer = Acquirer(source, FrameRing(4, source.frame_shape), timeout_s=0.5)
    acquirer.start()
    try:
        deadline = time.monotonic() + 10
        while acquirer.stats().gap_events == 0 and time.monotonic() < deadline:
            stalls.set()
            time.sleep(0.5)
        assert acquirer.stats().frame_id_gaps > 0
    finally:
        assert acquirer.stop(3.0)
        source.close()


def test_camera_that_stops_sending_is_reconnected_by_the_acquirer() -> None:
    source = GenICamSource(_cfg(timeout_s=0.2))
    source.open()
    faults: list[bool] = []
    acquirer = Acquirer(
        source,
        FrameRing(4, source.frame_shape),
        timeout_s=0.2,
        backoff_s=(0.05, 0.5),
        lost_after_timeouts=3,
        on_fault=lambda active, _reason: faults.append(active),
    )
    acquirer.start()
    try:
        deadline = time.monotonic() + 10
        while acquirer.stats().frames < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        node_map: Any = source.node_map
        node_map.AcquisitionStop.execute()  # the camera goes quiet
        while acquirer.stats().reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        frames = acquirer.stats().frames
        while acquirer.stats().frames < frames + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert faults == [True, False]
        assert acquirer.stats().frames >= frames + 3
    finally:
        assert acquirer.stop(3.0)
        source.close()


def test_missing_producer_and_unknown_camera_are_explained(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found") as err:
        GenICamSource(_cfg(cti=tmp_path / "vendor.cti")).open()
    assert "source.cti" in err.value.hint
    with pytest.raises(SourceError, match="VikyTL_DEV_red") as err:
        GenICamSource(_cfg(camera="no-such-serial")).open()
    assert "source.camera" in err.value.hint
    with pytest.raises(SourceError, match="3 cameras match"):
        GenICamSource(_cfg(camera="Viky")).open()


def test_feature_values_the_camera_refuses_are_explained() -> None:
    with pytest.raises(SourceError, match="BayerRG8") as err:
        GenICamSource(_cfg(pixel_format="BayerRG8")).open()
    assert "RGBa8" in err.value.hint
    with pytest.raises(SourceError, match="AcquisitionFrameRate") as err:
        GenICamSource(_cfg(frame_rate=5000.0)).open()
    assert "200" in err.value.hint
