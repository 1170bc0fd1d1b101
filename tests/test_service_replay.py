"""The daemon on the real photographs: replay of the MVTec-layout rope test folder,
every frame inspected (none dropped), stored defects matched to the masks by path."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_service_daemon import make_config

from rope_inspect.service.daemon import Daemon

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mvtec3d-rope"


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "test").is_dir(), reason=f"{DATA} is not here")
def test_replay_of_the_real_test_folder_scores_against_the_masks(
    tmp_path: Path, tiny_model: Path
) -> None:
    images = sorted((DATA / "test").rglob("*.png"))
    good = [p for p in images if p.parent.name == "good"]
    # threshold 0: every photograph holds one defect covering the rope envelope, so
    # each defective image is "found" and each good image carries one false alarm
    cfg = make_config(
        tmp_path,
        tiny_model,
        threshold=0.0,
        line={"name": "mvtec3d-rope", "speed_m_per_s": 5.0},
        source={
            "kind": "replay",
            "path": DATA / "test",
            "fps": 10.0,
            "loop": False,
            "realtime": False,
        },
        mask={"refresh_every": 1},
        reject={"outputs": []},
        metrics={"enabled": False},
    )
    summary = Daemon(cfg).run()

    frames = summary["frames"]
    assert summary["stopped_by"] == "source_finished"
    assert frames["acquired"] == frames["inspected"] == len(images)
    assert frames["dropped"] == 0
    truth = summary["ground_truth"]
    assert truth["images_inspected"] == len(images)
    assert truth["defects_found"] == len(images) - len(good)
    assert truth["defects_missed"] == 0
    assert truth["good_images"] == len(good)
    assert truth["good_images_with_false_alarm"] == len(good)
    assert summary["defects"] == summary["stored"] == len(images)
    assert summary["rejects"]["scheduled"] == 0
