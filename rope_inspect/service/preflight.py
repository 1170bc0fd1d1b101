"""Start-up checks shared by `rope-inspect run` and `rope-inspect validate-config`.

`preflight` checks everything about a config that can be checked without opening the
camera, the engine or the store, in the order `run` needs them: the calibration loads
and belongs to this line, the engine's sidecar matches the config (tile size, channel
order, file hash, the ONNX graph's input), the replay folder or the camera's GenTL
producer exists (and the synthetic line is horizontal), one tile fits the frame where
its size is known without the camera (synthetic size, camera AOI, the replay's
images), the defect store folder and the `--report` file can be written, the metrics
port is free. `run` calls it before it opens anything, and `validate-config` calls the
same function, so the two fail on the same config with the same error. A calibration
measured with another engine is not refused (the thresholds may still be right) but
warned about.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rope_inspect.acquisition.replay import ReplaySource, list_images
from rope_inspect.config import InspectConfig
from rope_inspect.decision.calibration import Calibration, load_calibration
from rope_inspect.engine import loader
from rope_inspect.engine.sidecar import Sidecar, check_rope_axis, check_sidecar
from rope_inspect.errors import ConfigError, DataError, SourceError
from rope_inspect.log import get_logger
from rope_inspect.vision.tiling import check_tile_fits

if TYPE_CHECKING:
    from rope_inspect.engine.base import Engine

log = get_logger(__name__)

CHANNEL_ORDER = "RGB"  # what the daemon feeds the engine


@dataclass
class Preflight:
    """What the checks found: the calibration (loaded once) and the warnings."""

    calibration: Calibration
    engine_sha256: str
    warnings: list[str] = field(default_factory=list)


def preflight(
    cfg: InspectConfig,
    *,
    report: Path | None = None,
    engine: Engine | None = None,
    source_given: bool = False,
) -> Preflight:
    """Check a config on this machine (see the module docstring); raise the first
    problem as a RopeInspectError with a hint. An `engine` or source handed to the
    daemon (tests, benchmarks) replaces the configured one and is not checked."""
    if not cfg.calibration.is_file():
        raise ConfigError(
            f"calibration file {cfg.calibration} does not exist",
            "measure this line's thresholds with rope-inspect calibrate --config "
            "<this config> --good <good images>, or fix `calibration:`",
        )
    calibration = load_calibration(cfg.calibration)
    check_calibration_line(cfg, calibration)
    sidecar = engine.sidecar if engine is not None else checked_sidecar(cfg)
    warnings = engine_hash_warnings(cfg, calibration, sidecar)
    if not source_given:
        check_source(cfg)
        check_frame_fits_tile(cfg)
    check_writable_folder(cfg.store.path, "store.path")
    if report is not None:
        check_report_path(report)
    if cfg.metrics.enabled:
        check_port_free(cfg.metrics.host, cfg.metrics.port)
    return Preflight(calibration, sidecar.engine_sha256, warnings)


def check_calibration_line(cfg: InspectConfig, calibration: Calibration) -> None:
    """A calibration measured on another line has the wrong thresholds and scale."""
    if calibration.line != cfg.line.name:
        raise ConfigError(
            f"calibration {cfg.calibration} is for line '{calibration.line}', this "
            f"config is line '{cfg.line.name}'",
            "calibrate this line (rope-inspect calibrate --config <this config> "
            "--good <good images>) or point `calibration:` at this line's file",
        )


def checked_sidecar(cfg: InspectConfig) -> Sidecar:
    """The engine's sidecar, checked against the config as `load_engine` does (the
    engine file exists, tile size, channel order, file hash), without loading it."""
    module = loader._backend_module(cfg.engine.backend)
    reader = getattr(module, "read_engine_sidecar", loader._default_sidecar)
    path, sidecar = reader(cfg.engine, cfg.tile_shape)
    check_sidecar(path, sidecar, tile=cfg.tile_shape, channel_order=CHANNEL_ORDER)
    check_rope_axis(path, sidecar, cfg.line.rope_axis)
    return sidecar


def engine_hash_warnings(
    cfg: InspectConfig, calibration: Calibration, sidecar: Sidecar
) -> list[str]:
    """A warning (logged) when the calibration was measured with another engine."""
    expected = calibration.engine_sha256
    if not expected or expected == sidecar.engine_sha256:
        return []
    text = (
        f"calibration {cfg.calibration} was measured with engine "
        f"{expected[:12]}, this engine {cfg.engine.model} is "
        f"{sidecar.engine_sha256[:12]}: its thresholds may not fit; recalibrate "
        "(rope-inspect calibrate)"
    )
    log.warning(
        "calibration_engine_mismatch",
        calibration=str(cfg.calibration),
        calibration_engine=expected,
        engine=sidecar.engine_sha256,
        action="recalibrate with this engine: rope-inspect calibrate",
    )
    return [text]


def check_source(cfg: InspectConfig) -> None:
    """The replay path or the GenTL producer exists (the camera is not opened)."""
    source = cfg.source
    if source.kind == "replay":
        if not source.path.exists():
            raise SourceError(
                f"replay path {source.path} does not exist",
                "set source.path to a folder of images or a video file",
            )
        if source.path.is_dir() and not list_images(source.path):
            raise SourceError(
                f"no images (png, jpg, bmp, tif) under {source.path}",
                "point source.path at a folder that holds the frames to replay",
            )
    elif source.kind == "synthetic" and cfg.line.rope_axis != "horizontal":
        raise ConfigError(
            "the synthetic line renders a horizontal rope, the config says "
            f"line.rope_axis: {cfg.line.rope_axis}",
            "set line.rope_axis: horizontal for the synthetic source, or replay "
            "frames of a vertical rope (source.kind: replay)",
        )
    elif source.kind == "genicam" and not source.cti.is_file():
        raise SourceError(
            f"GenTL producer {source.cti} not found",
            "install the camera vendor's SDK and set source.cti to its .cti file",
        )


def frame_size(cfg: InspectConfig) -> tuple[tuple[int, int], str] | None:
    """(height, width) of the frames and where that was read, when known without
    opening the camera: the synthetic size, the camera's AOI, the replay's frames
    (the size the replay itself settles on: its images' most common size)."""
    source = cfg.source
    if source.kind == "synthetic":
        return (source.height, source.width), "source.width / source.height"
    if source.kind == "genicam":
        if source.aoi is None:
            return None  # the camera's own size: checked on the first frame
        return (source.aoi[3], source.aoi[2]), "source.aoi"
    replay = ReplaySource(source)
    replay.open()
    try:
        height, width, _ = replay.frame_shape
    finally:
        replay.close()
    return (height, width), f"the images in {source.path}"


def check_frame_fits_tile(cfg: InspectConfig) -> None:
    """One tile fits the frame (otherwise every frame would fail in the tiling)."""
    known = frame_size(cfg)
    if known is None:
        return
    frame, origin = known
    try:
        check_tile_fits(frame, cfg.tile_shape, cfg.line.rope_axis)
    except DataError as exc:
        raise ConfigError(f"{exc.message}; frame size from {origin}", exc.hint) from exc


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_writable_folder(folder: Path, what: str) -> None:
    """`folder` is (or can be made, below a writable folder) a writable folder."""
    base = _existing_ancestor(folder.absolute())
    if not base.is_dir():
        raise ConfigError(
            f"{what} {folder}: {base} is not a folder",
            f"set {what} to a path below a writable folder",
        )
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what} {folder} cannot be written: {exc}",
            f"set {what} to a path below a writable folder (or fix its permissions)",
        ) from exc


def check_report_path(report: Path) -> None:
    """`--report` names a file that can be written at the end of the run."""
    if report.is_dir():
        raise ConfigError(
            f"--report {report} is a folder", "give the path of a JSON file to write"
        )
    check_writable_folder(report.parent, "--report")
    if report.exists() and not os.access(report, os.W_OK):
        raise ConfigError(
            f"--report {report} cannot be written (permissions)",
            "give the path of a JSON file you can write",
        )


def check_port_free(host: str, port: int) -> None:
    """Nothing listens on the metrics port yet (port 0 picks a free one)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc}",
                "another program (a rope-inspect already running?) uses it: set "
                "metrics.port to a free port (0 picks one) or metrics.enabled: false",
            ) from exc
