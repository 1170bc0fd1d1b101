"""The daemon's configuration: one strict pydantic model per part of the data flow.

This file is the user's reference: every field has a description and bounds. Load a
file with `load_inspect_config`; check one with `rope-inspect validate-config FILE`.
Relative paths in a config are resolved against the current working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from rope_inspect.configfile import StrictModel, load_config
from rope_inspect.vision.tile_shape import oriented


class LineConfig(StrictModel):
    """The production line this inspector watches."""

    name: str = Field(
        "demo", pattern=r"^[A-Za-z0-9_.-]+$", description="line id, used in file names"
    )
    rope_axis: Literal["horizontal", "vertical"] = Field(
        "horizontal", description="direction the rope runs through the image"
    )
    speed_m_per_s: float = Field(
        0.5, gt=0, le=50, description="rope speed past the camera"
    )
    rope_diameter_mm: float = Field(
        10.0, gt=0, le=200, description="nominal rope diameter"
    )
    encoder: Literal["none", "camera_chunk", "modbus"] = Field(
        "none",
        description="where the rope position comes from; 'none' integrates speed",
    )
    encoder_counts_per_m: float = Field(
        1000.0, gt=0, description="encoder counts per metre"
    )
    image_travel: Literal["negative", "positive"] = Field(
        "negative",
        description="way the rope moves in the image: negative = towards x = 0 (right "
        "to left; bottom to top for a vertical rope), positive = the other way",
    )


class SyntheticSourceConfig(StrictModel):
    """A rendered moving three-strand rope with defects of known place (the demo)."""

    kind: Literal["synthetic"]
    width: int = Field(640, ge=64, le=8192)
    height: int = Field(224, ge=64, le=8192)
    fps: float = Field(20.0, gt=0, le=1000, description="frame rate; 0 < fps")
    px_per_mm: float = Field(6.0, gt=0, description="image scale of the rendered rope")
    defects_per_m: float = Field(2.0, ge=0, le=100, description="mean defect rate")
    seed: int = Field(0, description="random seed: same seed, same rope")
    realtime: bool = Field(
        True, description="pace frames at fps; false renders flat out"
    )


class ReplaySourceConfig(StrictModel):
    """Replay of a folder of images (sorted by name, recursively) or a video file."""

    kind: Literal["replay"]
    path: Path = Field(description="folder of images or a video file")
    fps: float = Field(10.0, gt=0, le=1000)
    loop: bool = Field(False, description="start again at the end instead of stopping")
    realtime: bool = Field(
        True, description="pace frames at fps; false replays flat out"
    )
    decoded_cache_mb: int = Field(
        512,
        ge=0,
        le=65536,
        description="memory for keeping a folder's decoded images: when all of them "
        "fit, each is decoded once and then copied like a camera buffer; larger "
        "folders are decoded per frame; 0 always decodes",
    )


class GenICamSourceConfig(StrictModel):
    """A GenICam camera through harvesters and a vendor's GenTL producer."""

    kind: Literal["genicam"]
    cti: Path = Field(
        description="path to the GenTL producer (.cti) of the camera vendor"
    )
    camera: str | int = Field(0, description="serial number, user id, model or index")
    pixel_format: str | None = Field(
        None, description="PixelFormat to set; None keeps it"
    )
    exposure_us: float | None = Field(None, gt=0)
    gain_db: float | None = Field(None, ge=0)
    frame_rate: float | None = Field(None, gt=0)
    aoi: tuple[int, int, int, int] | None = Field(
        None, description="OffsetX, OffsetY, Width, Height"
    )
    timeout_s: float = Field(1.0, gt=0, le=60, description="fetch timeout per frame")
    num_buffers: int = Field(8, ge=2, le=256, description="driver buffers to announce")
    reconnect_backoff_s: tuple[float, float] = Field(
        (0.5, 30.0), description="first and largest wait between reconnect attempts"
    )
    lost_after_timeouts: int = Field(
        5, ge=1, le=1000, description="fetch timeouts in a row after which to reconnect"
    )


SourceConfig = Annotated[
    SyntheticSourceConfig | ReplaySourceConfig | GenICamSourceConfig,
    Field(discriminator="kind"),
]


class RingConfig(StrictModel):
    """Preallocated frame slots between acquisition and inspection."""

    slots: int = Field(
        8, ge=2, le=1024, description="frames held; oldest dropped when full"
    )


class MaskConfig(StrictModel):
    """GrabCut-derived rope mask, computed at reduced resolution and cached."""

    downscale: int = Field(
        4, ge=1, le=16, description="GrabCut runs at 1/downscale size"
    )
    refresh_every: int = Field(
        300,
        ge=1,
        description="recompute the mask every N frames; 1: GrabCut on every frame "
        "(no edge check)",
    )
    edge_shift_px: float = Field(
        6.0, gt=0, description="recompute early when the rope edge moves this far"
    )
    refresh_mode: Literal["background", "on_frame"] = Field(
        "background",
        description="background: a refresh runs in a worker thread and serves from "
        "a later frame (a running rope); on_frame: each frame is edge-checked before "
        "it is inspected and gets its own GrabCut mask when the rope moved "
        "(separate photographs, mostly of a rope lying in the same place)",
    )
    envelope_margin_px: int = Field(
        60,
        ge=0,
        le=512,
        description="widen the filled mask by this margin (defects stick out)",
    )
    grabcut_iterations: int = Field(3, ge=1, le=20)


class TilingConfig(StrictModel):
    """Tile grid laid over the rope only."""

    tile: int = Field(
        128,
        ge=32,
        le=1024,
        description="tile side along the rope in pixels (engine input); also across "
        "it unless tile_across is set",
    )
    tile_across: int | None = Field(
        None,
        ge=32,
        le=1024,
        description="tile side across the rope in pixels; unset: square tiles. Set it "
        "to the envelope band's height (rounded up to the model's multiple) so one row "
        "of tiles covers the band; the engine must be exported for this shape",
    )
    overlap: int = Field(
        16, ge=0, le=512, description="overlap between neighbouring tiles"
    )
    min_rope_fraction: float = Field(
        0.02, ge=0, le=1, description="skip tiles whose envelope share is below this"
    )

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> TilingConfig:
        side = min(self.tile, self.tile_across or self.tile)
        if self.overlap >= side:
            raise ValueError(
                f"overlap {self.overlap} must be smaller than the tile side {side} "
                "(tiles would not advance); a quarter of the tile is typical"
            )
        return self

    def shape(self, axis: str) -> tuple[int, int]:
        """(height, width) of every tile in the frame for a rope along `axis`."""
        return oriented(self.tile, self.tile_across or self.tile, axis)


class EngineConfig(StrictModel):
    """The inference engine."""

    backend: Literal["onnxruntime", "torch", "tensorrt"] = Field(
        "onnxruntime",
        description="tensorrt needs an NVIDIA GPU and the [tensorrt] extra",
    )
    model: Path = Field(
        Path("engines/demo.onnx"), description="ONNX file (or TensorRT plan)"
    )
    threads: int = Field(0, ge=0, le=256, description="intra-op threads; 0 = all cores")
    max_batch: int = Field(
        32, ge=1, le=1024, description="largest batch of tiles per call"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="onnxruntime: auto uses CUDA when its provider is installed"
    )
    spin_wait: bool = Field(
        False,
        description="onnxruntime: let idle intra-op threads spin between calls (lower "
        "latency on a dedicated machine; steals CPU from the other stages)",
    )


class DecisionConfig(StrictModel):
    """Turning the anomaly map into defects."""

    min_area_px: int = Field(30, ge=1, description="ignore smaller connected regions")
    merge_distance_m: float = Field(
        0.02, ge=0, description="defects closer than this along the rope are one defect"
    )
    smoothing_sigma_px: float = Field(
        2.0, ge=0, le=32, description="Gaussian on the map"
    )


class LogOutputConfig(StrictModel):
    kind: Literal["log"]


class ModbusOutputConfig(StrictModel):
    kind: Literal["modbus"]
    host: str = Field("127.0.0.1", description="PLC address")
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id")
    coil: int = Field(0, ge=0, le=65535, description="coil address to pulse")
    timeout_s: float = Field(1.0, gt=0, le=30)


class CameraLineOutputConfig(StrictModel):
    kind: Literal["camera_line"]
    line: str = Field("Line1", description="LineSelector value of the output line")
    user_output: str = Field("UserOutput1", description="UserOutputSelector value")


OutputConfig = Annotated[
    LogOutputConfig | ModbusOutputConfig | CameraLineOutputConfig,
    Field(discriminator="kind"),
]


def _log_output_only() -> list[OutputConfig]:
    return [LogOutputConfig(kind="log")]


class RejectConfig(StrictModel):
    """When and where the reject pulse is fired, and the fault output."""

    actuator_distance_m: float = Field(
        2.0, ge=0, description="distance along the rope from camera centre to actuator"
    )
    pulse_ms: float = Field(
        200.0, gt=0, le=60000, description="length of the reject pulse"
    )
    lead_m: float = Field(
        0.05, ge=0, description="open the gate this far before the defect"
    )
    outputs: list[OutputConfig] = Field(
        default_factory=_log_output_only,
        description="reject outputs, all fired together",
    )
    fault_outputs: list[OutputConfig] = Field(
        default_factory=_log_output_only,
        description="raised while the inspector cannot inspect",
    )


class StoreConfig(StrictModel):
    """Where defect crops, overlays, JSON records and the SQLite index go."""

    path: Path = Field(
        Path("var/store"), description="store folder (created if missing)"
    )
    max_bytes: int = Field(2_000_000_000, ge=1_000_000, description="retention limit")
    crop_margin_px: int = Field(32, ge=0, le=1024)
    save_full_frame: bool = Field(True, description="keep the whole frame for context")
    pending_limit: int = Field(
        1000, ge=1, description="defects held in memory while disk fails"
    )
    pending_frame_bytes: int = Field(
        256 * 2**20,
        ge=0,
        description="memory for queued full frames; past it, crops only",
    )
    crop_min_px: int = Field(
        256, ge=16, le=4096, description="crops are at least this square"
    )
    frame_jpeg_quality: int = Field(
        90, ge=10, le=100, description="full-frame JPEG quality"
    )
    retry_backoff_s: tuple[float, float] = Field(
        (0.2, 10.0),
        description="first and largest wait between retries of a failed write",
    )


class MetricsConfig(StrictModel):
    """Prometheus metrics and /healthz."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="bind address; localhost by default")
    port: int = Field(9108, ge=0, le=65535, description="0 picks a free port")
    stuck_after_s: float = Field(
        10.0, gt=0, description="a stage without progress is stuck"
    )


class LoggingConfig(StrictModel):
    format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: JSON under systemd or when not a terminal"
    )
    level: Literal["debug", "info", "warning", "error"] = "info"


class ServiceConfig(StrictModel):
    """How the daemon stops and reports itself (keep systemd's TimeoutStopSec above)."""

    stop_timeout_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="drain the ring and write pending defects within",
    )
    status_interval_s: float = Field(
        30.0, gt=0, le=3600, description="status log and sd_notify STATUS period"
    )


class InspectConfig(StrictModel):
    """Everything `rope-inspect run` needs."""

    line: LineConfig = Field(default_factory=LineConfig)
    source: SourceConfig
    ring: RingConfig = Field(default_factory=RingConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    tiling: TilingConfig = Field(default_factory=TilingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    calibration: Path = Field(
        Path("calibration/demo.yaml"),
        description="thresholds and mm per pixel of this line",
    )
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    reject: RejectConfig = Field(default_factory=RejectConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(height, width) of the engine's input tiles on this line."""
        return self.tiling.shape(self.line.rope_axis)


def load_inspect_config(path: str | Path) -> InspectConfig:
    """Load and validate a daemon config file."""
    return load_config(path, InspectConfig)
