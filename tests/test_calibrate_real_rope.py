"""calibrate on the real rope photographs with a tiny exported DraemModel.

The weights are untrained, so the thresholds mean nothing here; what is checked is the
real path: GrabCut finds the real rope, its width gives a plausible scale, every frame
goes through the exported graph, and the defect folder in MVTec layout is read by type
with its `good/` folder left out. The photographs are only linked from a scratch
folder, never copied.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rope_inspect.cli import main
from rope_inspect.decision.calibration import load_calibration
from rope_inspect.engine.parity import default_data_root

pytestmark = [pytest.mark.data, pytest.mark.slow]
TILE = 64


@pytest.fixture(scope="module")
def data_root() -> Path:
    root = default_data_root()
    if root is None:
        pytest.skip("../shared/data/mvtec3d-rope is absent")
    return root.resolve()


def _link(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in files:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.model.export import export_onnx

    torch.manual_seed(0)
    cfg = ModelConfig(recon_width=4, seg_width=4, depth=2)
    path = tmp_path_factory.mktemp("engine") / "tiny.onnx"
    export_onnx(DraemModel(cfg).eval(), path, tile=TILE)
    return path


def test_calibrate_real_photographs(data_root: Path, engine: Path, tmp_path: Path):
    good = _link(
        sorted((data_root / "validation/good").glob("*.png"))[:8], tmp_path / "g"
    )
    defects = tmp_path / "d"
    _link(sorted((data_root / "test/cut").glob("*.png"))[:2], defects / "cut")
    _link(sorted((data_root / "test/good").glob("*.png"))[:2], defects / "good")
    config = tmp_path / "line.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "line": {"name": "real", "speed_m_per_s": 5.0},
                "source": {"kind": "replay", "path": str(good), "fps": 10.0},
                "mask": {"refresh_every": 1},
                "tiling": {"tile": TILE, "overlap": 8},
                "engine": {"model": str(engine), "threads": 2},
                "calibration": str(tmp_path / "real.yaml"),
                "metrics": {"enabled": False},
            }
        )
    )
    code = main(
        ["--log-level", "warning", "calibrate", "--config", str(config),
         "--good", str(good), "--defects", str(defects),
         "--false-rejects-per-km", "5000"]
    )  # fmt: skip
    assert code == 0
    cal = load_calibration(tmp_path / "real.yaml")
    assert cal.good_images == 8 and cal.defect_images == 2
    # the rope is ~50 px at half maximum, ~57 px in the full-size GrabCut mask
    assert cal.rope_width_px is not None and 45 <= cal.rope_width_px <= 65
    assert 0.15 <= cal.mm_per_px <= 0.22
    assert cal.frames_per_km == pytest.approx(1e6 / (900 * cal.mm_per_px))
