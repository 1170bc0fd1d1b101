"""kill -9 of a daemon process while it writes defects: on restart the store is
consistent (no half files, no rows without files) and the repair is reported."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from test_service_daemon import make_config

from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.storage.index import DefectIndex

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, yaml
from rope_inspect.config import InspectConfig
from rope_inspect.engine.loader import load_engine
from rope_inspect.service.daemon import Daemon, RunLimits
from rope_inspect.service.injection import SpotEngine
cfg = InspectConfig.model_validate(yaml.safe_load(open(sys.argv[1])))
engine = SpotEngine(load_engine(cfg.engine, cfg.tile_shape), every=1)
Daemon(cfg, engine=engine).run(RunLimits(duration_s=120))
"""


def test_kill_9_during_writes_leaves_a_consistent_store(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model, reject={"outputs": []})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    store = Path(cfg.store.path)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list((store / "defects").rglob("*.json"))) < 4:
            assert child.poll() is None, "the daemon ended on its own"
            assert time.monotonic() < deadline, "no defects written"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)

    summary = Daemon(cfg).run(RunLimits(max_frames=2))

    recovery = summary["store_recovery"]
    assert set(recovery) >= {"clean", "lost", "reindexed", "temp_files_removed"}
    index = DefectIndex(store / "index.sqlite")
    records = list(index.iter_records())
    index.close()
    assert len(records) >= 4
    listed: set[str] = set()
    for record in records:
        for rel in record.file_paths():
            assert (store / rel).is_file(), f"row {record.id} lacks {rel}"
            listed.add(rel)
    on_disk = {p.relative_to(store).as_posix() for p in (store / "defects").rglob("*")}
    on_disk = {p for p in on_disk if (store / p).is_file()}
    assert on_disk == listed  # no file without its row, no half-written file
