"""The daemon's decision stage: crops sized from the store config, and what became of
each reject (fired, late, failed, not fired) reaching the store, the fault output,
the metrics and the summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_service_daemon import make_config, spot_engine

from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.injection import export_tiny_model
from rope_inspect.storage.index import DefectIndex


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny exported model of test_service_daemon (one export per session)."""
    pytest.importorskip("torch")
    return export_tiny_model(tmp_path_factory.getbasetemp() / "tiny-engine.onnx")


def _records(store: Path) -> list:
    index = DefectIndex(store / "index.sqlite")
    try:
        return list(index.iter_records())
    finally:
        index.close()


def test_crops_are_sized_by_store_crop_min_px(tmp_path: Path, tiny_model: Path) -> None:
    cfg = make_config(
        tmp_path, tiny_model, store={"crop_min_px": 200, "crop_margin_px": 0}
    )
    summary = Daemon(cfg, engine=spot_engine(cfg)).run(RunLimits(max_frames=4))

    records = _records(cfg.store.path)
    assert summary["defects"] >= 1 and len(records) == summary["stored"]
    for record in records:
        x0, y0, x1, y1 = record.crop_box
        assert (x1 - x0, y1 - y0) == (200, 200)  # the 20 px spot, widened to 200
