"""The JSON sidecar written beside every engine file, and the checks made on load.

The runtime refuses an engine whose sidecar does not match the config or this machine,
and says how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rope_inspect.errors import EngineMismatch
from rope_inspect.vision.tile_shape import (
    TileShape,
    config_keys,
    describe,
    tile_hw,
)

SIDECAR_SUFFIX = ".json"


class Sidecar(BaseModel):
    """What an engine file is, where it came from, and what it expects."""

    model_config = ConfigDict(extra="allow")

    format: Literal["onnx", "tensorrt", "torch"]
    engine_sha256: str = Field(description="hash of the engine file itself")
    model_sha256: str = Field(description="hash of the checkpoint weights it came from")
    architecture: dict[str, Any] = Field(description="model switches, width, depth")
    tile: int = Field(gt=0, description="tile width in pixels (and height if square)")
    tile_height: int | None = Field(
        default=None, gt=0, description="tile height in pixels when not square"
    )
    channel_order: Literal["RGB", "BGR"] = "RGB"
    input_layout: Literal["NHWC"] = "NHWC"
    input_dtype: Literal["uint8"] = "uint8"
    precision: Literal["fp32", "fp16"] = "fp32"
    opset: int | None = None
    versions: dict[str, str] = Field(
        default_factory=dict, description="exporter, runtime"
    )
    trained_on: str = Field(default="", description="data the weights were trained on")
    rope_axis: Literal["horizontal", "vertical"] | None = Field(
        default=None, description="rope direction in the training images"
    )
    threshold_source: str = Field(
        default="", description="calibration file the thresholds come from"
    )
    # TensorRT plans only
    gpu_name: str | None = None
    compute_capability: str | None = None
    built_at: str | None = None

    @property
    def tile_shape(self) -> TileShape:
        """(height, width) of the input tiles the engine takes."""
        return (self.tile_height or self.tile, self.tile)


def shape_fields(tile: int | TileShape) -> dict[str, int | None]:
    """The sidecar's `tile` / `tile_height` fields for a tile shape."""
    height, width = tile_hw(tile)
    return {"tile": width, "tile_height": None if height == width else height}


def sidecar_path(engine_path: Path) -> Path:
    """`engines/x.onnx` -> `engines/x.onnx.json`."""
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sidecar(engine_path: Path, sidecar: Sidecar) -> Path:
    path = sidecar_path(engine_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(sidecar.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)
    return path


def describe_errors(exc: ValidationError) -> str:
    """Which fields are wrong and why, without pydantic's help links."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "the file"
        text = f"{where}: {error['msg']}"
        if error["type"] not in ("missing", "json_invalid") and "input" in error:
            text += f" (got {error['input']!r:.60})"
        parts.append(text)
    return "; ".join(parts)


def read_sidecar(engine_path: Path) -> Sidecar:
    """Read the sidecar of `engine_path`; refuse a missing or malformed one."""
    path = sidecar_path(engine_path)
    rebuild = (
        f"re-export it: rope-inspect export --run <run folder> --out {engine_path}"
    )
    if not path.exists():
        raise EngineMismatch(f"engine {engine_path} has no sidecar {path}", rebuild)
    try:
        return Sidecar.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise EngineMismatch(
            f"sidecar {path} is malformed: {describe_errors(exc)}", rebuild
        ) from exc
    except (OSError, ValueError) as exc:
        raise EngineMismatch(f"sidecar {path} cannot be read: {exc}", rebuild) from exc


def _stride(sidecar: Sidecar) -> int | None:
    """The model's multiple (2 ** depth) from the sidecar's architecture, if told."""
    depth = sidecar.architecture.get("depth")
    return 2**depth if isinstance(depth, int) and 0 <= depth <= 10 else None


def _tile_mismatch(engine_path: Path, sidecar: Sidecar, wanted: TileShape) -> str:
    """The hint for an engine built for other tiles than the config asks."""
    have = sidecar.tile_shape
    keep = f"or set {config_keys(have, 'horizontal')} in the config"
    if have[0] != have[1]:
        keep += f" (a horizontal rope; vertical: {config_keys(have, 'vertical')})"
    height, width = wanted
    stride = _stride(sidecar)
    if stride and (height % stride or width % stride):
        rounded = (-(-height // stride) * stride, -(-width // stride) * stride)
        return (
            f"the config's tile sides must be multiples of the model's stride "
            f"{stride} px (e.g. {describe(rounded)}); then re-export the engine for "
            f"them, {keep}"
        )
    flag = f"--tile {width}" + (f" --tile-height {height}" if height != width else "")
    return (
        f"re-export with {flag}: rope-inspect export --run <run folder> --out "
        f"{engine_path} {flag}, {keep}"
    )


def check_rope_axis(engine_path: Path, sidecar: Sidecar, axis: str) -> None:
    """Refuse an engine trained on rope running the other way than on this line: its
    maps would flag the rope's own texture everywhere."""
    if sidecar.rope_axis is None or sidecar.rope_axis == axis:
        return
    raise EngineMismatch(
        f"engine {engine_path} was trained on a {sidecar.rope_axis} rope; this line's "
        f"line.rope_axis is {axis}",
        f"mount the camera so the rope runs {sidecar.rope_axis} in the image (and set "
        f"line.rope_axis: {sidecar.rope_axis}), or train on images of this line "
        f"(data.rope_axis: {axis}) and export that model",
    )


def check_onnx_input(engine_path: Path, sidecar: Sidecar) -> None:
    """Refuse an ONNX engine whose graph takes other tiles than its sidecar says (a
    sidecar edited by hand or copied from another export). Read with ONNX Runtime,
    the runtime's own dependency (the `onnx` package comes with the train extra)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(
            str(engine_path), options, providers=["CPUExecutionProvider"]
        )
        sides = list(session.get_inputs()[0].shape)
    except Exception as exc:  # ORT's own error types, OSError, no input: re-raised
        raise EngineMismatch(
            f"engine {engine_path} is not a readable ONNX graph: {exc}",
            f"re-export it: rope-inspect export --run <run folder> --out {engine_path}",
        ) from exc
    fixed = len(sides) == 4 and all(isinstance(v, int) for v in sides[1:3])
    if not fixed:
        return  # not a fixed N x h x w x 3 input: the backend's own check refuses it
    graph_hw = (int(sides[1]), int(sides[2]))
    if graph_hw != sidecar.tile_shape:
        raise EngineMismatch(
            f"engine {engine_path} takes {describe(graph_hw)} tiles but its sidecar "
            f"says {describe(sidecar.tile_shape)} (tile {sidecar.tile}, tile_height "
            f"{sidecar.tile_height})",
            "the sidecar was edited or belongs to another export: re-export the "
            f"engine (rope-inspect export --run <run folder> --out {engine_path}) "
            "so file and sidecar are written together",
        )


def check_sidecar(
    engine_path: Path,
    sidecar: Sidecar,
    *,
    tile: int | TileShape,
    channel_order: str = "RGB",
) -> None:
    """Refuse an engine whose file or sidecar does not match what the config expects.

    `tile` is the (height, width) of the tiles the pipeline will pass (an int: square).
    """
    wanted = tile_hw(tile)
    if sidecar.tile_shape != wanted:
        raise EngineMismatch(
            f"engine {engine_path} was built for {describe(sidecar.tile_shape)} tiles, "
            f"config asks {describe(wanted)}",
            _tile_mismatch(engine_path, sidecar, wanted),
        )
    if sidecar.channel_order != channel_order:
        raise EngineMismatch(
            f"engine {engine_path} expects {sidecar.channel_order}, pipeline gives "
            f"{channel_order} (channel order of the tiles)",
            "engines written by rope-inspect export take RGB tiles: re-export it, "
            f"rope-inspect export --run <run folder> --out {engine_path}; an engine "
            f"made elsewhere for {sidecar.channel_order} input cannot be used as it is",
        )
    actual = file_sha256(engine_path)
    if actual != sidecar.engine_sha256:
        raise EngineMismatch(
            f"engine {engine_path} does not match its sidecar (file hash "
            f"{actual[:12]}, sidecar says {sidecar.engine_sha256[:12]}): the file "
            "was replaced or corrupted",
            "rebuild or re-export the engine so file and sidecar are written together",
        )
    if sidecar.format == "onnx" and engine_path.suffix == ".onnx":
        check_onnx_input(engine_path, sidecar)
