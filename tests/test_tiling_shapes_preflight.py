"""Non-square tiles refused at start-up, not frame by frame: a tile larger than the
frame, a synthetic line told its rope is vertical, a hand-edited sidecar whose tile
shape is not the graph's, a tile side off the model's stride; and `export
--tile-height` alone keeps the training tile as the width."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_service_daemon import make_config

from rope_inspect.engine.sidecar import Sidecar, check_sidecar, sidecar_path
from rope_inspect.errors import ConfigError, DataError, EngineMismatch
from rope_inspect.model.commands import requested_tile
from rope_inspect.service.preflight import preflight
from rope_inspect.vision.tile_shape import config_keys, side_keys
from rope_inspect.vision.tiling import check_tile_fits, tile_grid


def test_tile_taller_than_the_synthetic_frame_fails_preflight(
    tmp_path: Path, tiny_model: Path
) -> None:
    cfg = make_config(tmp_path, tiny_model, source={"height": 200})
    with pytest.raises(ConfigError) as info:
        preflight(cfg)
    assert "tiling.tile_across 224 > frame height 200" in info.value.message
    assert "source.width / source.height" in info.value.message


def test_tile_wider_than_the_replay_images_fails_preflight(
    tmp_path: Path, tiny_model: Path
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        cv2.imwrite(str(frames / f"{index}.png"), np.zeros((224, 150, 3), np.uint8))
    source = {"kind": "replay", "path": str(frames)}
    cfg = make_config(tmp_path, tiny_model, source=source)
    with pytest.raises(ConfigError, match=r"tiling\.tile 160 > frame width 150"):
        preflight(cfg)


def test_synthetic_source_with_a_vertical_rope_fails_preflight(
    tmp_path: Path, tiny_model: Path
) -> None:
    vertical = tmp_path / "vertical.onnx"
    cfg = make_config(
        tmp_path,
        vertical,
        line={"rope_axis": "vertical"},
        tiling={"tile": 224, "tile_across": 160},  # 224 x 160 (h x w) upright
    )
    shutil.copy(tiny_model, vertical)
    shutil.copy(sidecar_path(tiny_model), sidecar_path(vertical))
    with pytest.raises(ConfigError, match="synthetic line renders a horizontal"):
        preflight(cfg)


def test_a_sidecar_swapped_by_hand_is_refused_before_the_first_frame(
    tmp_path: Path, tiny_model: Path
) -> None:
    edited = tmp_path / "edited.onnx"
    shutil.copy(tiny_model, edited)
    fields = json.loads(sidecar_path(tiny_model).read_text())
    assert (fields["tile_height"], fields["tile"]) == (224, 160)
    fields["tile"], fields["tile_height"] = 224, 160
    sidecar_path(edited).write_text(json.dumps(fields))
    # the config follows the edited sidecar, so only the graph can tell
    cfg = make_config(tmp_path, edited, tiling={"tile": 224, "tile_across": 160})
    with pytest.raises(EngineMismatch) as info:
        preflight(cfg)
    assert "takes 224 x 160 px tiles but its sidecar says 160 x 224" in str(info.value)


def _sidecar(tile: int, tile_height: int | None) -> Sidecar:
    return Sidecar(
        format="onnx",
        engine_sha256="0" * 64,
        model_sha256="0" * 64,
        architecture={"depth": 4},
        tile=tile,
        tile_height=tile_height,
    )


def test_mismatch_hint_names_the_stride_and_both_orientations() -> None:
    with pytest.raises(EngineMismatch) as info:
        check_sidecar(Path("e.onnx"), _sidecar(160, 224), tile=(200, 160))
    hint = info.value.hint
    assert "multiples of the model's stride 16 px (e.g. 208 x 160 px)" in hint
    assert "--tile-height 200" not in hint  # an export that would fail
    assert "tiling.tile: 160, tiling.tile_across: 224" in hint
    assert "vertical: tiling.tile: 224, tiling.tile_across: 160" in hint


def test_mismatch_hint_for_a_square_engine_drops_tile_across() -> None:
    with pytest.raises(EngineMismatch) as info:
        check_sidecar(Path("e.onnx"), _sidecar(160, None), tile=(224, 160))
    assert "--tile 160 --tile-height 224" in info.value.hint
    assert "tiling.tile: 160 with no tiling.tile_across" in info.value.hint


def test_keys_follow_the_rope_axis() -> None:
    assert side_keys("horizontal") == ("tiling.tile_across", "tiling.tile")
    assert side_keys("vertical") == ("tiling.tile", "tiling.tile_across")
    assert config_keys((224, 160), "vertical") == (
        "tiling.tile: 224, tiling.tile_across: 160"
    )
    with pytest.raises(DataError, match=r"tiling\.tile 256 > frame height 224"):
        check_tile_fits((224, 900), (256, 224), "vertical")
    check_tile_fits((224, 900), (224, 160), "horizontal")
    with pytest.raises(DataError, match=r"\(tiling\.tile 256 > frame height 224"):
        check_tile_fits((224, 900), (256, 256), "horizontal")  # no tile_across set


def test_the_grid_names_the_key_to_shrink() -> None:
    envelope = np.ones((224, 640), bool)
    with pytest.raises(DataError, match=r"tiling\.tile_across 256 > frame height"):
        tile_grid(envelope, (256, 160), 0, 0.02)


def test_tile_height_alone_keeps_the_training_tile_as_width(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    run = tmp_path / "model.pt"
    payload = {
        "model_config": {},
        "state_dict": {},
        "train_config": {"data": {"tile": 96}},
        "step": 1,
    }
    torch.save(payload, run)
    given = argparse.Namespace(run=run, tile=None, tile_height=224)
    assert requested_tile(given) == (224, 96)
    both = argparse.Namespace(run=run, tile=160, tile_height=224)
    assert requested_tile(both) == (224, 160)
    square = argparse.Namespace(run=run, tile=160, tile_height=None)
    assert requested_tile(square) == 160
    default = argparse.Namespace(run=run, tile=None, tile_height=None)
    assert requested_tile(default) is None  # the exporter takes the training tile


def _vertical_line(tmp_path: Path, tiny_model: Path, trained_axis: str | None) -> Path:
    """A copy of the tiny engine whose sidecar says what rope it was trained on."""
    engine = tmp_path / f"trained-{trained_axis}.onnx"
    shutil.copy(tiny_model, engine)
    data = json.loads(sidecar_path(tiny_model).read_text())
    data["rope_axis"] = trained_axis
    sidecar_path(engine).write_text(json.dumps(data))
    return engine


@pytest.mark.parametrize("trained_axis", ["horizontal", "vertical", None])
def test_an_engine_trained_on_the_other_rope_direction_fails_preflight(
    tmp_path: Path, tiny_model: Path, trained_axis: str | None
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):  # a vertical rope: tall frames
        cv2.imwrite(str(frames / f"{index}.png"), np.zeros((400, 224, 3), np.uint8))
    engine = _vertical_line(tmp_path, tiny_model, trained_axis)
    cfg = make_config(
        tmp_path,
        engine,
        source={"kind": "replay", "path": str(frames)},
        line={"rope_axis": "vertical"},
        tiling={"tile": 224, "tile_across": 160},  # (h, w) = (224, 160) upright
    )
    if trained_axis != "horizontal":  # vertical, or not recorded: nothing to refuse
        preflight(cfg)
        return
    with pytest.raises(EngineMismatch) as info:
        preflight(cfg)
    assert "trained on a horizontal rope" in info.value.message
    assert "line.rope_axis is vertical" in info.value.message
    assert "data.rope_axis: vertical" in info.value.hint


def test_export_and_the_torch_backend_record_the_training_rope_axis() -> None:
    from rope_inspect.model.export_source import training_rope_axis

    assert training_rope_axis({"data": {"rope_axis": "vertical"}}) == "vertical"
    assert training_rope_axis({"data": {"root": "x"}}) == "horizontal"  # the default
    assert training_rope_axis({}) is None
    for engine in ("engines/demo.onnx", "engines/mvtec3d-rope.onnx"):
        path = Path(__file__).resolve().parents[1] / engine
        assert Sidecar.model_validate_json(
            sidecar_path(path).read_text()
        ).rope_axis == ("horizontal")
