"""The benchmarks run end to end at tiny sizes and print their tables and targets.

Each script runs as a user runs it (`python benchmarks/<name>.py`, here with
`--smoke`) on a tiny untrained model exported with its checkpoint beside it, so
the ONNX Runtime and torch paths both run. The figures are meaningless at these
sizes and are not checked: only that every table and target is printed and that
the JSON result holds a PASS/FAIL verdict for every target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "mvtec3d-rope" / "test"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained DRAEM: checkpoint and the ONNX engine exported from it."""
    torch = pytest.importorskip("torch")
    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.model.export import export_onnx
    from rope_inspect.training.checkpoint import save_atomic

    folder = tmp_path_factory.mktemp("bench-model")
    torch.manual_seed(0)
    cfg = ModelConfig.cpu_small(
        recon_width=4, seg_width=4, depth=2, transformer=False, aspp=False
    )
    checkpoint = folder / "tiny.pt"
    save_atomic(
        {
            "model_config": cfg.model_dump(mode="json"),
            "state_dict": DraemModel(cfg).state_dict(),
            "train_config": {"name": "tiny-test"},
            "step": 0,
        },
        checkpoint,
    )
    onnx = folder / "tiny.onnx"
    export_onnx(checkpoint, onnx, tile=128)
    return onnx


def run_benchmark(name: str, tmp_path: Path, *extra: str) -> tuple[str, dict]:
    out = tmp_path / f"{name}.json"
    command = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke"]
    command += ["--out", str(out), *extra]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def check_printed(stdout: str, result: dict, tables: int) -> None:
    assert stdout.count("\n### ") == tables + 1  # + the targets table
    assert "### Targets (issue 7)" in stdout
    assert result["targets"], "every benchmark states at least one target"
    for target in result["targets"]:
        assert isinstance(target["passed"], bool)
        verdict = "PASS" if target["passed"] else "FAIL"
        assert f"| {target['name']}" in stdout
        assert verdict in stdout
    assert result["machine"]["nproc"] >= 1


def no_photos(tmp_path: Path) -> tuple[str, str]:
    return ("--photos", str(tmp_path / "absent"))


def test_engines_compares_ort_and_torch(tiny_model: Path, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "engines", tmp_path, "--model", str(tiny_model), *no_photos(tmp_path)
    )
    check_printed(stdout, result, tables=1)
    cases = [row[0] for row in result["tables"][0]["rows"]]
    assert "torch eager, batched" in cases and "ORT engine, batch 1" in cases
    assert "ORT engine, engine.max_batch 1" in cases


def test_tiling_reports_envelope_ratio(tiny_model: Path, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "tiling", tmp_path, "--model", str(tiny_model), *no_photos(tmp_path)
    )
    check_printed(stdout, result, tables=2)
    coverage = result["tables"][0]
    shipped, square = (
        dict(zip(coverage["headers"], row, strict=True)) for row in coverage["rows"][:2]
    )
    assert shipped["layout"] == "224 x 160 px, overlap 0"  # configs/demo.yaml
    assert square["layout"] == "128 px, overlap 16"
    for row in (shipped, square):  # the tiles cover the envelope: never below 1
        assert row["tiles/frame"] > 0 and row["pixels inferred / envelope"] >= 1.0


def test_mask_cost_splits_check_and_refresh(tiny_model: Path, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "mask_cost", tmp_path, "--model", str(tiny_model), *no_photos(tmp_path)
    )
    check_printed(stdout, result, tables=1)  # the downscale table needs photos


def test_pipeline_overhead_runs_the_daemon(tiny_model: Path, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "pipeline_overhead",
        tmp_path,
        "--model",
        str(tiny_model),
        *no_photos(tmp_path),
    )
    check_printed(stdout, result, tables=3)
    run = result["synthetic, camera-like"]
    assert len(run["daemon_fps"]) == len(run["bare_fps"]) == 1
    assert run["tiles_per_frame"] > 0


def test_latency_reports_p99(tiny_model: Path, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "latency", tmp_path, "--model", str(tiny_model), *no_photos(tmp_path)
    )
    check_printed(stdout, result, tables=1)
    assert len(result["synthetic"]["latency_s"]) > 0


def test_memory_reports_slope_and_allocations(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    stdout, result = run_benchmark("memory", tmp_path)
    check_printed(stdout, result, tables=4)
    assert "| malloc heap KiB | malloc in use KiB | Python blocks |" in stdout


def test_acquisition_from_the_simulated_producer(tmp_path: Path) -> None:
    from rope_inspect.acquisition.genicam import simulated_producer

    if simulated_producer() is None:
        pytest.skip("genicam's viky.cti is not installed")
    stdout, result = run_benchmark("acquisition", tmp_path)
    check_printed(stdout, result, tables=2)


@pytest.mark.data
def test_mask_cost_on_real_photographs(tiny_model: Path, tmp_path: Path) -> None:
    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} is absent")
    stdout, result = run_benchmark("mask_cost", tmp_path, "--model", str(tiny_model))
    check_printed(stdout, result, tables=3)
    assert any("real photographs" in t["name"] for t in result["targets"])
    downscales = result["tables"][1]["rows"]
    assert [row[0] for row in downscales][:4] == [2, 4, 6, 8]
    assert {row[1] for row in downscales[4:]} == {1, 2, 3} - {downscales[0][1]}
    agreement = result["on_frame_agreement"]
    assert agreement["same_tile_grid"] <= agreement["frames"]
    assert 1 <= agreement["grabcut_runs"] <= agreement["frames"]


def test_run_all_prints_one_table(tmp_path: Path) -> None:
    from rope_inspect.acquisition.genicam import simulated_producer

    if simulated_producer() is None:
        pytest.skip("genicam's viky.cti is not installed")
    command = [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--smoke"]
    command += ["--only", "acquisition", "--out", str(tmp_path)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "### All targets of issue 7" in done.stdout
    assert (tmp_path / "run_all.json").is_file()
