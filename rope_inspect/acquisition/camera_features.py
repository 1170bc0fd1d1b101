"""Setting GenICam camera features (exposure, gain, frame rate, AOI, pixel format).

Features follow the SFNC names, with the older GigE names as fallbacks. A feature the
camera lacks or that is read-only is logged and skipped (cameras differ); a value the
camera refuses (out of range, not in the enumeration) is a SourceError that names the
allowed values, because the config asked for something this camera cannot do.
Works on any node map object whose nodes have `.value` (GenApi or a recorded fake).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rope_inspect.errors import SourceError
from rope_inspect.log import get_logger

if TYPE_CHECKING:
    from rope_inspect.config import GenICamSourceConfig

log = get_logger(__name__)

_WRITABLE_MODES = {2, 4}  # GenApi EAccessMode WO and RW


def feature(node_map: Any, *names: str) -> tuple[str, Any] | None:
    """The first of `names` the node map has, with its node; None if it has none."""
    for name in names:
        node = getattr(node_map, name, None)
        if node is not None:
            return name, node
    return None


def enum_values(node: Any) -> tuple[str, ...]:
    """The symbolic values of an enumeration node (empty when it cannot say)."""
    try:
        return tuple(str(v) for v in node.symbolics)
    except AttributeError:
        return ()


def _writable(node: Any) -> bool:
    try:
        return int(node.get_access_mode()) in _WRITABLE_MODES
    except AttributeError:
        return True


def set_feature(node_map: Any, value: Any, *names: str) -> str:
    """Set the first present feature of `names`; returns what happened, for the log."""
    found = feature(node_map, *names)
    if found is None:
        log.warning("camera_feature_missing", feature=names[0], value=value)
        return "missing"
    name, node = found
    if not _writable(node):
        log.warning("camera_feature_read_only", feature=name, value=value)
        return "read-only"
    allowed = enum_values(node)
    if allowed and str(value) not in allowed:
        raise SourceError(
            f"the camera does not offer {name}={value!r}",
            f"use one of: {', '.join(allowed)}",
        )
    try:
        node.value = value
    except Exception as exc:
        raise SourceError(
            f"the camera refused {name}={value!r}: {exc}", _range_hint(node, name)
        ) from exc
    return f"set {name}={value}"


def _range_hint(node: Any, name: str) -> str:
    try:
        return f"{name} must lie in [{node.min}, {node.max}]"
    except Exception:
        return f"check the camera's documentation for {name}"


def _set_optional(node_map: Any, name: str, value: Any) -> None:
    """Set a helper feature (auto modes, enables) only if the camera has it."""
    found = feature(node_map, name)
    if found is not None and _writable(found[1]):
        set_feature(node_map, value, name)


def apply_features(node_map: Any, cfg: GenICamSourceConfig) -> dict[str, str]:
    """Set every feature the config gives; returns {feature: outcome}."""
    done: dict[str, str] = {}
    if cfg.pixel_format is not None:
        done["PixelFormat"] = set_feature(node_map, cfg.pixel_format, "PixelFormat")
    if cfg.aoi is not None:
        x, y, width, height = cfg.aoi
        for name in ("OffsetX", "OffsetY"):
            _set_optional(node_map, name, 0)
        done["Width"] = set_feature(node_map, width, "Width")
        done["Height"] = set_feature(node_map, height, "Height")
        done["OffsetX"] = set_feature(node_map, x, "OffsetX")
        done["OffsetY"] = set_feature(node_map, y, "OffsetY")
    if cfg.exposure_us is not None:
        _set_optional(node_map, "ExposureAuto", "Off")
        done["ExposureTime"] = set_feature(
            node_map, cfg.exposure_us, "ExposureTime", "ExposureTimeAbs"
        )
    if cfg.gain_db is not None:
        _set_optional(node_map, "GainAuto", "Off")
        done["Gain"] = set_feature(node_map, cfg.gain_db, "Gain")
    if cfg.frame_rate is not None:
        _set_optional(node_map, "AcquisitionFrameRateEnable", True)
        done["AcquisitionFrameRate"] = set_feature(
            node_map, cfg.frame_rate, "AcquisitionFrameRate", "AcquisitionFrameRateAbs"
        )
    return done
