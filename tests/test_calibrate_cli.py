"""`rope-inspect calibrate` on synthetic rope photographs and a tiny brightness engine.

The engine maps bright pixels to high anomaly (a sigmoid of grey level), so white
contamination on the rope scores high and plain rope low: enough to check thresholds,
recall, margin and scale. The images are dark foam with a textured bright band of known
width, 36 px for a 10 mm rope.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import structlog
import yaml
from onnx import TensorProto, helper
from onnx_helpers import save_engine, tile_model

from rope_inspect.cli import main
from rope_inspect.decision.calibration import load_calibration
from rope_inspect.engine import calibrate as calibrate_module
from rope_inspect.engine.sidecar import file_sha256

TILE = 32
HEIGHT, WIDTH = 96, 256
ROPE = (30, 66)  # rows of the rope band: 36 px


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() points structlog at the captured stderr; undo that after each test."""
    yield
    structlog.reset_defaults()


def brightness_graph(tile: int = TILE) -> onnx.ModelProto:
    """map = sigmoid(12 * (grey / 255 - 0.8)); score = max of the map."""
    node = helper.make_node
    arrays: dict[str, np.ndarray] = {
        "k": np.array(12.0 / (3 * 255), np.float32),
        "c": np.array(12.0 * 0.8, np.float32),
        "ch": np.array([3], np.int64),
        "axes": np.array([1, 2, 3], np.int64),
    }
    nodes = [
        node("Cast", ["tiles"], ["f"], to=TensorProto.FLOAT),
        node("ReduceSum", ["f", "ch"], ["s"], keepdims=1),
        node("Mul", ["s", "k"], ["ks"]),
        node("Sub", ["ks", "c"], ["z"]),
        node("Sigmoid", ["z"], ["m"]),
        node("Transpose", ["m"], ["anomaly_map"], perm=[0, 3, 1, 2]),
        node("ReduceMax", ["anomaly_map", "axes"], ["score"], keepdims=0),
    ]
    return tile_model(nodes, arrays, tile, "brightness")


def rope_image(seed: int, defect: bool = False) -> np.ndarray:
    """BGR (for cv2.imwrite) dark foam with a bright three-strand band."""
    rng = np.random.default_rng(seed)
    image = rng.normal(30, 4, (HEIGHT, WIDTH, 3))
    yy, xx = np.mgrid[ROPE[0] : ROPE[1], 0:WIDTH]
    lay = 0.5 + 0.5 * np.sin((xx + 2 * yy + seed) * 2 * np.pi / 18)
    image[ROPE[0] : ROPE[1]] = (110 + 50 * lay)[..., None] + rng.normal(
        0, 6, lay.shape
    )[..., None]
    if defect:
        cx = int(rng.integers(40, WIDTH - 40))
        cv2.circle(image, (cx, (ROPE[0] + ROPE[1]) // 2), 6, (250, 250, 250), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(
    folder: Path, count: int, defect: bool = False, start: int = 0
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rope_image(start + i, defect))
    return folder


def write_engine(folder: Path, tile: int = TILE) -> Path:
    path = folder / "bright.onnx"
    return save_engine(
        brightness_graph(tile), path, tile, "brightness", model_sha256="2" * 64
    )


def write_config(folder: Path, engine: Path, tile: int = TILE) -> Path:
    cfg = {
        "line": {"name": "testline", "speed_m_per_s": 5.0, "rope_diameter_mm": 10.0},
        "source": {"kind": "replay", "path": str(folder), "fps": 1.0},
        "mask": {"downscale": 2, "refresh_every": 1, "envelope_margin_px": 8},
        "tiling": {"tile": tile, "overlap": 8, "min_rope_fraction": 0.02},
        "engine": {"backend": "onnxruntime", "model": str(engine), "threads": 1},
        "calibration": str(folder / "calibration" / "testline.yaml"),
        "decision": {"smoothing_sigma_px": 1.0},
        "metrics": {"enabled": False},
    }
    path = folder / "line.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    engine = write_engine(tmp_path)
    return {
        "config": write_config(tmp_path, engine),
        "engine": engine,
        "out": tmp_path / "calibration" / "testline.yaml",
    }


def _calibrate(*args: str) -> int:
    return main(["--log-format", "json", "--log-level", "error", "calibrate", *args])


def test_calibrate_writes_thresholds_scale_and_provenance(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_images(tmp_path / "good", 20)
    write_images(tmp_path / "defects" / "contamination", 4, defect=True)
    write_images(tmp_path / "defects" / "good", 3, start=50)  # MVTec layout: skipped
    code = _calibrate(
        "--config", str(setup["config"]), "--good", str(good),
        "--defects", str(tmp_path / "defects"), "--false-rejects-per-km", "3000",
        "--out", str(setup["out"]),
    )  # fmt: skip
    assert code == 0
    cal = load_calibration(setup["out"])
    assert cal.line == "testline" and cal.good_images == 20
    assert cal.threshold_method == "empirical"
    assert cal.pixel_threshold == cal.image_threshold
    assert cal.engine_sha256 == file_sha256(setup["engine"])
    assert cal.measured_at and str(good) in cal.source
    assert cal.mm_per_px == pytest.approx(10.0 / 36, rel=0.12)
    assert cal.rope_width_px == pytest.approx(36, rel=0.12)
    # frames per km from the field of view: 256 px * mm/px (fps 1 at 5 m/s is fewer)
    assert cal.frames_per_km == pytest.approx(1e6 / (WIDTH * cal.mm_per_px))
    assert cal.false_alarm_per_frame == pytest.approx(
        3000 * WIDTH * cal.mm_per_px / 1e6
    )
    assert cal.defect_images == 4 and cal.defect_recall == 1.0
    assert (
        cal.margin_to_nearest_defect is not None and cal.margin_to_nearest_defect > 0.3
    )
    printed = capsys.readouterr().out
    assert "contamination: 4/4" in printed and "wrote" in printed


def test_too_few_good_images_says_how_many(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_images(tmp_path / "good", 5)
    args = ["--config", str(setup["config"]), "--good", str(good)]
    assert _calibrate(*args) == 2
    err = capsys.readouterr().err
    assert "needs at least" in err and "--allow-extrapolation" in err
    assert not setup["out"].exists()

    assert _calibrate(*args, "--allow-extrapolation") == 2
    assert "too few even to fit a tail model" in capsys.readouterr().err


def test_extrapolation_is_recorded_as_such(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    good = write_images(tmp_path / "good", 24)
    code = _calibrate(
        "--config", str(setup["config"]), "--good", str(good),
        "--allow-extrapolation", "--out", str(setup["out"]),
    )  # fmt: skip
    assert code == 0
    cal = load_calibration(setup["out"])
    assert cal.threshold_method == "tail-fit" and "EXTRAPOLATED" in cal.source
    assert cal.image_threshold < 1.0


def test_empty_folder_and_folder_without_rope_are_refused(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _calibrate("--config", str(setup["config"]), "--good", str(empty)) == 2
    assert "no images in" in capsys.readouterr().err

    plain = tmp_path / "plain"
    plain.mkdir()
    for i in range(4):  # foam only: nothing stands out of the background
        foam = np.random.default_rng(i).normal(30, 3, (HEIGHT, WIDTH, 3))
        cv2.imwrite(str(plain / f"{i}.png"), np.clip(foam, 0, 255).astype(np.uint8))
    code = _calibrate("--config", str(setup["config"]), "--good", str(plain))
    assert code == 2
    err = capsys.readouterr().err
    assert "found no rope in any of the 4 good images" in err
    assert "line.rope_axis" in err


def test_engine_that_does_not_match_the_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = write_engine(tmp_path, tile=TILE)
    config = write_config(tmp_path, engine, tile=64)  # engine was made for 32 px
    good = write_images(tmp_path / "good", 3)
    assert _calibrate("--config", str(config), "--good", str(good)) == 2
    err = capsys.readouterr().err
    assert "32 px tiles, config asks 64 px" in err


def test_previous_scale_change_is_flagged(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_images(tmp_path / "good", 20)
    setup["out"].parent.mkdir(parents=True)
    setup["out"].write_text(
        "line: testline\npixel_threshold: 0.5\nimage_threshold: 0.5\nmm_per_px: 0.1\n"
    )
    code = _calibrate(
        "--config", str(setup["config"]), "--good", str(good),
        "--false-rejects-per-km", "3000",
    )  # fmt: skip
    assert code == 0  # --out defaults to the file the config reads
    assert "WARNING: mm per pixel" in capsys.readouterr().out
    assert load_calibration(setup["out"]).mm_per_px > 0.2


@pytest.mark.parametrize("where", ["afile/cal.yaml", "a_folder"])
def test_unwritable_out_is_refused_before_scoring(
    setup: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("scoring started before --out was checked")

    monkeypatch.setattr(calibrate_module, "calibrate", refuse)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "a_folder").mkdir()
    good = write_images(tmp_path / "good", 2)
    out = tmp_path / where
    code = _calibrate("--config", str(setup["config"]), "--good", str(good),
                      "--out", str(out))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "hint:" in err
    assert "Traceback" not in err
