"""A GenICam camera as a frame source, through harvesters and a vendor's GenTL producer.

`open()` loads the producer (.cti), picks the camera (serial, user id, model, id or
index), announces `num_buffers` driver buffers, sets the features the config asks for
where the camera has them (see `camera_features.py`) and refuses a pixel format it
cannot convert. `read_into()` fetches one buffer with a timeout, converts it straight
into the ring slot (the one copy) and gives the buffer back to the driver at once,
before anything else happens. A buffer that is truncated, of the wrong size or of an
unexpected format is counted and skipped; a producer error means the camera is lost.

Buffers are fetched raw (`is_raw=True`): harvesters' payload wrapper is not built per
frame, and the buffer is requeued in a `finally`, even when its contents are bad.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rope_inspect.acquisition.base import Counters, FrameInfo, FrameSkipped
from rope_inspect.acquisition.camera_features import apply_features, enum_values
from rope_inspect.acquisition.pixel_formats import (
    PIXEL_FORMATS,
    PixelConverter,
    unsupported_format_error,
)
from rope_inspect.errors import SourceError, SourceLost
from rope_inspect.log import get_logger

if TYPE_CHECKING:
    from rope_inspect.config import GenICamSourceConfig

log = get_logger(__name__)


def simulated_producer() -> Path | None:
    """The simulated GenTL producer shipped in the genicam wheel (viky.cti), if any."""
    try:
        import genicam
    except ImportError:
        return None
    path = Path(genicam.__file__).parent / "viky.cti"
    return path if path.is_file() else None


def _describe(info: Any) -> str:
    props = info.property_dict
    return "{} {} serial {} id {}".format(
        props.get("vendor"),
        props.get("model"),
        props.get("serial_number"),
        props.get("id_"),
    )


def select_device(devices: list[Any], camera: str | int) -> Any:
    """The device info matching the configured selector; SourceError lists the found."""
    found = "; ".join(_describe(d) for d in devices) or "none"
    if isinstance(camera, int) and 0 <= camera < len(devices):
        return devices[camera]
    keys = ("serial_number", "user_defined_name", "id_", "model")
    matches = [
        d for d in devices if str(camera) in {str(d.property_dict.get(k)) for k in keys}
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SourceError(
            f"no camera matches source.camera={camera!r} (cameras found: {found})",
            "set source.camera to a serial, user id, model or index from the list",
        )
    raise SourceError(
        f"{len(matches)} cameras match source.camera={camera!r}: {found}",
        "set source.camera to the serial number of one of them",
    )


class GenICamSource:
    """A GenICam camera; see the module docstring."""

    name = "genicam"

    def __init__(self, cfg: GenICamSourceConfig) -> None:
        self.cfg = cfg
        self._harvester: Any = None
        self._ia: Any = None
        self._converter: PixelConverter | None = None
        self._counters = Counters()
        self._errors: tuple[type[BaseException], ...] = ()
        self._missing: tuple[type[BaseException], ...] = (AttributeError,)
        self._timeout_error: type[BaseException] | None = None
        self._format_names: dict[int, str] = {}
        self._frames = 0
        self.features: dict[str, str] = {}

    # -- open / close ------------------------------------------------------------

    def open(self) -> None:
        if self._ia is not None:
            return
        self._import_genicam()
        try:
            ia = self._open_device()
            self._converter = self._make_converter()
            ia.start()
        except Exception:
            self.close()
            raise
        log.info(
            "camera_opened",
            cti=str(self.cfg.cti),
            shape=self.frame_shape,
            pixel_format=self._converter.spec.name,
            features=self.features,
        )

    def _import_genicam(self) -> None:
        try:
            from genicam.genapi import GenericException as GenApiError
            from genicam.gentl import GenericException as GenTLError
            from genicam.gentl import TimeoutException
            from harvesters.util.pfnc import dict_by_ints
        except ImportError as exc:
            raise SourceError(
                f"the genicam package cannot be imported: {exc}",
                "pip install genicam harvesters (wheels exist for x86_64 and aarch64)",
            ) from exc
        self._errors = (GenTLError, GenApiError)
        self._missing = (AttributeError, GenTLError, GenApiError)
        self._timeout_error = TimeoutException
        self._format_names = dict_by_ints

    def _open_device(self) -> Any:
        from harvesters.core import Harvester

        cti = Path(self.cfg.cti)
        if not cti.is_file():
            raise SourceError(
                f"GenTL producer {cti} not found",
                "install the camera vendor's SDK and set source.cti to its .cti file",
            )
        self._harvester = Harvester()
        self._harvester.add_file(str(cti))
        self._harvester.update()
        devices = list(self._harvester.device_info_list)
        if not devices:
            raise SourceError(
                f"no camera found through {cti}",
                "check the cable, power and network setup; the vendor's viewer must "
                "see the camera",
            )
        info = select_device(devices, self.cfg.camera)
        try:
            self._ia = self._harvester.create(info)
        except self._errors as exc:
            raise SourceError(
                f"cannot open camera {_describe(info)}: {exc}",
                "is another program (a viewer, a second inspector) using it?",
            ) from exc
        self._ia.num_buffers = self.cfg.num_buffers
        self.features = apply_features(self.node_map, self.cfg)
        return self._ia

    def _make_converter(self) -> PixelConverter:
        node_map: Any = self.node_map
        name = str(node_map.PixelFormat.value)
        if name not in PIXEL_FORMATS:
            offered = enum_values(node_map.PixelFormat)
            raise unsupported_format_error(name, offered)
        return PixelConverter(
            name, int(node_map.Width.value), int(node_map.Height.value)
        )

    def close(self) -> None:
        ia, harvester = self._ia, self._harvester
        self._ia = None
        self._harvester = None
        for step, call in (
            ("stop", getattr(ia, "stop", None)),
            ("destroy", getattr(ia, "destroy", None)),
            ("reset", getattr(harvester, "reset", None)),
        ):
            if call is None:
                continue
            try:
                call()
            except Exception as exc:
                log.warning("camera_close_step_failed", step=step, error=str(exc))

    def stop_streaming(self) -> None:
        """Stop acquisition on the open camera (reads then time out)."""
        if self._ia is not None:
            self._ia.stop()

    def start_streaming(self) -> None:
        """Start acquisition again after `stop_streaming`."""
        if self._ia is not None:
            self._ia.start()

    # -- properties --------------------------------------------------------------

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        if self._converter is None:
            raise SourceError("camera not open", "call open() first")
        return self._converter.shape

    @property
    def node_map(self) -> Any | None:
        return None if self._ia is None else self._ia.remote_device.node_map

    @property
    def counters(self) -> dict[str, int]:
        return self._counters.snapshot()

    # -- frames ------------------------------------------------------------------

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        if self._ia is None or self._timeout_error is None:
            raise SourceLost("camera not open")
        try:
            raw = self._ia.fetch(timeout=timeout_s, is_raw=True)
            try:
                self._frames += 1
                frame_id = self._info(raw, "frame_id", self._frames)
                problem = self._copy(raw, slot)
            finally:  # the buffer goes back to the driver, whatever happened
                raw.parent.queue_buffer(raw)
        except self._timeout_error:
            return None
        except self._errors as exc:
            raise SourceLost(f"camera stopped delivering: {exc}") from exc
        arrived_ns = time.monotonic_ns()
        if problem is not None:
            self._counters.add(problem[0])
            log.warning(
                "camera_frame_skipped",
                reason=problem[0],
                frame_id=frame_id,
                **problem[1],
            )
            raise FrameSkipped(problem[0])
        # TODO(#3): encoder count from chunk data when line.encoder=camera_chunk
        return FrameInfo(timestamp_ns=arrived_ns, camera_frame_id=frame_id)

    def _copy(self, raw: Any, slot: np.ndarray) -> tuple[str, dict[str, Any]] | None:
        """Convert the buffer into the slot, or say why not (reason, details)."""
        conv = self._converter
        if conv is None:
            raise SourceLost("camera not open")
        name = self._buffer_format(raw, conv.spec.name)
        if name != conv.spec.name:
            return "pixel_format", {"pixel_format": name, "expected": conv.spec.name}
        width = self._info(raw, "width", conv.width)
        height = self._info(raw, "height", conv.height)
        if (width, height) != (conv.width, conv.height):
            return "wrong_size", {
                "size": (width, height),
                "expected": (conv.width, conv.height),
            }
        padding = self._info(raw, "padding_x", 0)
        if padding != conv.row_bytes - conv.width * conv.spec.bytes_per_pixel:
            conv = self._converter = PixelConverter(name, width, height, padding)
        offset = self._info(raw, "image_offset", 0)
        buffer = raw.raw_buffer
        filled = self._info(raw, "size_filled", len(buffer)) - offset
        if filled < conv.needed_bytes:
            return "truncated", {"bytes": filled, "expected": conv.needed_bytes}
        payload = np.frombuffer(
            buffer, dtype=np.uint8, count=conv.needed_bytes, offset=offset
        )
        conv.convert(payload, slot)
        return None

    def _info(self, raw: Any, attribute: str, default: int) -> int:
        """A buffer info field, or the default where the producer lacks it."""
        try:
            return int(getattr(raw, attribute))
        except self._missing:
            return default

    def _buffer_format(self, raw: Any, default: str) -> str:
        code = self._info(raw, "pixel_format", -1)
        if code < 0:
            return default
        name = self._format_names.get(code)
        return f"0x{code:08x}" if name is None else str(name)
