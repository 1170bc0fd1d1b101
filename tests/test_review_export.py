"""Export of QA verdicts as an MVTec-layout dataset the training code reads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import structlog

from rope_inspect.cli import main
from rope_inspect.config import StoreConfig
from rope_inspect.errors import ConfigError, DataError
from rope_inspect.review.export import export_dataset
from rope_inspect.storage import DefectQuery, DefectStore, StoreView
from rope_inspect.storage.sample import sample_defect, write_sample_store
from rope_inspect.training.data import MvtecLayout

SIZE = 128


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() points structlog at the captured stderr; undo that after each test."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 20 defects: 12 false alarms, 6 confirmed, 2 unreviewed."""
    root = tmp_path_factory.mktemp("export") / "store"
    write_sample_store(root, count=20, seed=7)
    view = StoreView.open(root)
    records = view.list_defects(DefectQuery(limit=100, descending=False)).items
    for n, record in enumerate(records[:18]):
        view.set_verdict(record.id, "false_alarm" if n < 12 else "defect", "qa")
    view.close()
    return root


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_export_all_layout(reviewed: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa"
    view = StoreView.open(reviewed)
    summary = export_dataset(view, out, "all", size=SIZE)
    view.close()
    counts = summary.counts
    assert counts["train/good"] == 10 and counts["validation/good"] == 1
    assert counts["test/good"] == 1
    defect_folders = {
        k: v for k, v in counts.items() if k.startswith("test/") and "good" not in k
    }
    assert sum(defect_folders.values()) == 6 and not summary.skipped

    for folder in counts:
        for image_path in sorted((out / folder).glob("*.png")):
            assert read_gray(image_path).shape == (SIZE, SIZE, 3)
    for folder in defect_folders:
        kind = folder.split("/")[1]
        for image_path in sorted((out / folder).glob("*.png")):
            mask = read_gray(
                out / "ground_truth" / kind / f"{image_path.stem}_mask.png"
            )
            assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) <= {0, 255}
            assert mask[
                SIZE // 2 - 8 : SIZE // 2 + 8, SIZE // 2 - 8 : SIZE // 2 + 8
            ].any()
            assert mask.mean() < 255 * 0.5  # the flaw, not the whole square

    manifest = json.loads((out / "export_manifest.json").read_text())
    assert len(manifest["files"]) == 18 and manifest["size"] == SIZE

    layout = MvtecLayout(out)
    assert len(layout.train_images()) == 10 and len(layout.validation_images()) == 1
    samples = layout.test_samples()
    assert len(samples) == 7 and samples[0].defect == "good"
    assert all(s.mask_path is not None for s in samples[1:])


def test_export_false_alarms_only_and_refuses_non_empty(
    reviewed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fa"
    view = StoreView.open(reviewed)
    summary = export_dataset(view, out, "false-alarm", size=SIZE)
    assert set(summary.counts) == {"train/good", "validation/good", "test/good"}
    assert not (out / "ground_truth").exists()
    with pytest.raises(DataError, match="not empty"):
        export_dataset(view, out, "defect", size=SIZE)
    view.close()


def test_export_onto_a_file_is_a_clean_error(
    reviewed: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    view = StoreView.open(reviewed)
    with pytest.raises(ConfigError, match="is a file"):
        export_dataset(view, afile, "all", size=SIZE)
    with pytest.raises(ConfigError, match="not a folder"):
        export_dataset(view, afile / "qa", "all", size=SIZE)
    view.close()
    args = ["review", "--store", str(reviewed), "export", "--out", str(afile)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "hint:" in err and "Traceback" not in err
    assert afile.read_text() == "x"


def test_crop_smaller_than_square_uses_frame_then_padding(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = DefectStore(StoreConfig.model_validate({"path": tmp_path / "s"}))
    with_frame = sample_defect(rng, 1.7e9, 1.0)
    no_frame = sample_defect(rng, 1.7e9 + 1, 2.0)
    store.add(*with_frame)
    store.add(*no_frame[:3])
    store.close(timeout_s=30)
    view = StoreView.open(tmp_path / "s")
    for item in (with_frame, no_frame):
        view.set_verdict(item[0].id, "defect", "qa")
    summary = export_dataset(view, tmp_path / "out", "defect", size=200)
    view.close()
    # the crop is 160 px: the frame (224 x 640) covers 200 px, the crop alone cannot
    assert summary.padded == 1 and sum(summary.counts.values()) == 2


def test_export_needs_a_threshold_for_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    record, crop, map_crop, frame = sample_defect(rng, 1.7e9, 1.0)
    record.threshold = None
    store = DefectStore(StoreConfig.model_validate({"path": tmp_path / "s"}))
    store.add(record, crop, map_crop, frame)
    store.close(timeout_s=30)
    view = StoreView.open(tmp_path / "s")
    view.set_verdict(record.id, "defect", "qa")
    with pytest.raises(DataError, match="threshold"):
        export_dataset(view, tmp_path / "a", "defect", size=SIZE)
    summary = export_dataset(view, tmp_path / "b", "defect", size=SIZE, threshold=0.5)
    assert summary.counts == {f"test/{record.defect_type}": 1}
    view.close()


def test_cli_export(
    reviewed: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    store = tmp_path / "store"
    shutil.copytree(reviewed, store)
    out = tmp_path / "cli-out"
    code = main(
        [
            "review",
            "--store",
            str(store),
            "export",
            "--verdict",
            "defect",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert sum(printed["counts"].values()) == 6
    assert (out / "ground_truth").is_dir() and not (out / "train").exists()
    assert (
        main(["review", "--store", str(tmp_path / "none"), "export", "--out", str(out)])
        == 2
    )


@pytest.mark.slow
def test_train_and_eval_accept_the_export(reviewed: Path, tmp_path: Path) -> None:
    """Two training steps and an evaluation on the exported folder."""
    out = tmp_path / "qa"
    view = StoreView.open(reviewed)
    export_dataset(view, out, "all", size=SIZE)
    view.close()
    run = tmp_path / "run"
    recipe = Path(__file__).parents[1] / "configs" / "train" / "synthetic-demo.yaml"
    overrides = [
        f"data.root={out}",
        "optim.steps=2",
        "optim.batch_size=2",
        "validation_tiles=2",
        "checkpoint_every=1",
        "optim.warmup_steps=0",
    ]
    sets = [arg for value in overrides for arg in ("--set", value)]
    assert main(["train", "--config", str(recipe), "--out", str(run), *sets]) == 0
    evaluated = main(
        [
            "eval",
            "--run",
            str(run),
            "--data",
            str(out),
            "--no-overlays",
            "--out",
            str(tmp_path / "e"),
        ]
    )
    assert evaluated == 0
