"""End to end: the daemon on the synthetic line with a tiny exported model.

Every run is bounded (`--max-frames`), uses the real acquisition thread, ring, rope
mask, tiling, ONNX Runtime engine, decision, reject scheduler and defect store, and
checks the accounting, the store contents and that no thread is left behind.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rope_inspect.config import InspectConfig, load_inspect_config
from rope_inspect.engine.loader import load_engine
from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.injection import SpotEngine
from rope_inspect.storage import StoreView
from rope_inspect.storage.index import DefectIndex
from rope_inspect.vision.tiling import cut_tiles, stitch

ROOT = Path(__file__).resolve().parents[1]


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def make_config(
    tmp_path: Path, model: Path, threshold: float = 0.5, **changes: Any
) -> InspectConfig:
    """The demo config, pointed at the tiny model, a temporary store and calibration
    (of the config's line)."""
    calibration = tmp_path / "calibration.yaml"
    data = load_inspect_config(ROOT / "configs" / "demo.yaml").model_dump()
    _merge(
        data,
        {
            "engine": {"model": model, "threads": 1},
            "calibration": calibration,
            "store": {"path": tmp_path / "store", "save_full_frame": True},
            "metrics": {"port": 0},
            "line": {"speed_m_per_s": 0.5},
            "source": {"fps": 20.0},
            "service": {"stop_timeout_s": 20.0},
        },
    )
    if "kind" in changes.get("source", {}):
        data["source"] = {}  # another kind of source: start from its defaults
    _merge(data, changes)
    calibration.write_text(
        f"line: {data['line']['name']}\npixel_threshold: {threshold}\n"
        f"image_threshold: {threshold}\nmm_per_px: 0.16667\n"
    )
    return InspectConfig.model_validate(data)


def spot_engine(cfg: InspectConfig, every: int = 3) -> SpotEngine:
    return SpotEngine(load_engine(cfg.engine, cfg.tile_shape), every=every)


def other_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started by the run that are still alive (after a short grace)."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        alive = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not alive:
            return []
        time.sleep(0.05)
    return sorted(t.name for t in alive)


def test_daemon_inspects_stores_and_accounts_for_every_frame(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model, reject={"actuator_distance_m": 0.01})
    engine = spot_engine(cfg)
    before = set(threading.enumerate())

    summary = Daemon(cfg, engine=engine).run(RunLimits(max_frames=12))

    frames = summary["frames"]
    assert summary["stopped_by"] == "max_frames"
    assert frames["inspected"] == 12
    assert frames["uninspected"] == frames["quality_skipped"] == 0
    assert summary["accounting_ok"], summary["accounting"]
    taken_dropped_left = frames["taken"] + frames["dropped"] + frames["left_in_ring"]
    assert frames["acquired"] == taken_dropped_left
    assert summary["tiles"] == 4 * frames["inspected"]  # the demo rope: 4 tall tiles
    assert summary["defects"] >= 2
    assert summary["stored"] == summary["defects"]
    assert summary["store"]["unwritten"] == []
    assert summary["rejects"]["fired"] >= 1
    assert summary["clean_exit"]
    assert other_threads(before) == []

    view = StoreView(cfg.store.path, DefectIndex(cfg.store.path / "index.sqlite"))
    records = list(view.index.iter_records())
    assert len(records) == summary["defects"]
    for record in records:
        for rel in record.file_paths():
            assert (cfg.store.path / rel).is_file(), rel
        stored = json.loads((cfg.store.path / record.json).read_text())
        assert stored["id"] == record.id
    fired = [r for r in records if r.reject_state in ("fired", "late")]
    assert len(fired) >= 1
    view.index.close()

    truth = summary["ground_truth"]
    assert truth["kind"] == "synthetic"
    assert truth["stored_defects"] == summary["defects"]
    assert truth["rope_inspected_m"] > 0


def test_rejects_due_after_shutdown_are_logged_not_fired(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = make_config(tmp_path, tiny_model, reject={"actuator_distance_m": 40.0})
    summary = Daemon(cfg, engine=spot_engine(cfg)).run(RunLimits(max_frames=8))

    assert summary["defects"] >= 1
    assert summary["rejects"]["fired"] == 0
    assert summary["rejects"]["not_fired"] == summary["defects"]
    assert summary["shutdown"]["rejects_not_fired"] == summary["defects"]
    logged = capsys.readouterr()
    assert "reject_not_fired" in logged.out + logged.err

    index = DefectIndex(cfg.store.path / "index.sqlite")
    states = {r.reject_state for r in index.iter_records()}
    index.close()
    assert states == {"not_fired"}


class FrameEngine:
    """An engine with the optional `infer_frame` (as TensorRT has), done on the host."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.sidecar = inner, "frame-engine", inner.sidecar
        self.frame_calls = self.tile_calls = 0

    def infer(self, tiles):
        self.tile_calls += 1
        return self.inner.infer(tiles)

    def infer_frame(self, image, grid, out):
        self.frame_calls += 1
        tiles = np.empty((grid.count, *grid.tile, 3), np.uint8)
        maps, scores = self.inner.infer(cut_tiles(image, grid, tiles))
        return stitch(maps, grid, out), scores

    def close(self) -> None:
        self.inner.close()


def test_an_engine_with_infer_frame_gets_one_frame_call_per_frame(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model)
    engine = FrameEngine(load_engine(cfg.engine, cfg.tile_shape))

    summary = Daemon(cfg, engine=engine).run(RunLimits(max_frames=4))

    assert engine.frame_calls == summary["frames"]["inspected"] >= 4
    assert engine.tile_calls == 0
    assert summary["tiles"] == 4 * engine.frame_calls
