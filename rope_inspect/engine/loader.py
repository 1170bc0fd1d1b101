"""Choose the engine backend named in the config, check its sidecar, open it.

Backends are plugins: each is a module with `open_engine(engine_cfg, sidecar) -> Engine`
and, when its sidecar is not simply the one beside `engine_cfg.model`, a
`read_engine_sidecar(engine_cfg, tile_shape) -> (checked_file, Sidecar)`. A module is
imported only when its backend is asked for, so `onnxruntime` users never import torch
or TensorRT; a backend whose package is missing says which extra to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from rope_inspect.config import EngineConfig
from rope_inspect.engine.base import Engine
from rope_inspect.engine.sidecar import Sidecar, check_sidecar, read_sidecar
from rope_inspect.errors import EngineError, MissingExtra
from rope_inspect.vision.tile_shape import TileShape

# backend name (EngineConfig.backend) -> module implementing it
BACKENDS: dict[str, str] = {
    "onnxruntime": "rope_inspect.engine.onnxruntime_backend",
    "torch": "rope_inspect.engine.torch_backend",
    # Written by the TensorRT part (build-engine); needs the [tensorrt] extra.
    "tensorrt": "rope_inspect.engine.tensorrt_backend",
}
# backend -> the pip extra that brings its packages
EXTRAS: dict[str, str] = {"torch": "train", "tensorrt": "tensorrt"}


def _backend_module(backend: str) -> ModuleType:
    name = BACKENDS.get(backend)
    if name is None:
        raise EngineError(
            f"unknown engine backend '{backend}'",
            f"set engine.backend to one of {', '.join(sorted(BACKENDS))}",
        )
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise EngineError(
                f"engine backend '{backend}' is not part of this installation",
                "use engine.backend: onnxruntime, or update rope-inspect",
            ) from exc
        if backend in EXTRAS:
            raise MissingExtra(
                str(exc.name), EXTRAS[backend], f"the {backend} engine backend"
            ) from exc
        raise


def _default_sidecar(
    engine_cfg: EngineConfig, tile: int | TileShape
) -> tuple[Path, Sidecar]:
    path = Path(engine_cfg.model)
    if path.is_dir():
        raise EngineError(
            f"engine.model {path} is a folder, not an engine file",
            f"name the engine file itself, e.g. {path / 'model.onnx'} (the folder "
            "holds the engine files and their .json sidecars)",
        )
    if not path.is_file():
        raise EngineError(
            f"engine file {path} does not exist",
            "export one with `rope-inspect export --run <run folder> --out "
            f"{path}` (or `rope-inspect build-engine` for TensorRT), or fix "
            "engine.model in the config",
        )
    return path, read_sidecar(path)


def load_engine(
    engine_cfg: EngineConfig, tile: int | TileShape, channel_order: str = "RGB"
) -> Engine:
    """Open the configured engine for tiles of `tile` = (height, width) px (an int:
    square); refuse a mismatched sidecar.

    Raises `EngineMismatch` (with what to rebuild) when the sidecar's tile size, channel
    order or file hash does not match, `MissingExtra` when the backend's package is not
    installed, `EngineError` for anything else that stops the engine from loading.
    """
    module = _backend_module(engine_cfg.backend)
    reader = getattr(module, "read_engine_sidecar", _default_sidecar)
    path, sidecar = reader(engine_cfg, tile)
    check_sidecar(path, sidecar, tile=tile, channel_order=channel_order)
    engine: Engine = module.open_engine(engine_cfg, sidecar)
    return engine
