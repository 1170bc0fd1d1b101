"""Camera pixel formats -> the RGB ring slot, in one copy from the driver buffer.

A `PixelConverter` is built once per stream (format, width, height, line padding) and
converts a raw payload (bytes as the camera sent them) straight into a preallocated
H x W x 3 RGB slot. OpenCV writes into the slot itself; the only other memory is a
pair of scratch planes for 10/12-bit formats, allocated at construction.

Supported: Mono8, Mono10, Mono12 (unpacked, 16-bit little endian, scaled to 8 bit),
RGB8, BGR8, RGBa8, BGRa8 and Bayer RG/GR/GB/BG 8 (demosaiced by OpenCV).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rope_inspect.errors import SourceError


@dataclass(frozen=True, slots=True)
class PixelFormatSpec:
    """How one pixel format is laid out and turned into RGB."""

    name: str
    bytes_per_pixel: int
    channels: int
    cv_code: int | None
    bits: int = 8


_BAYER = {
    "BayerRG8": cv2.COLOR_BayerRGGB2RGB,
    "BayerGR8": cv2.COLOR_BayerGRBG2RGB,
    "BayerGB8": cv2.COLOR_BayerGBRG2RGB,
    "BayerBG8": cv2.COLOR_BayerBGGR2RGB,
}

PIXEL_FORMATS: dict[str, PixelFormatSpec] = {
    "Mono8": PixelFormatSpec("Mono8", 1, 1, cv2.COLOR_GRAY2RGB),
    "Mono10": PixelFormatSpec("Mono10", 2, 1, cv2.COLOR_GRAY2RGB, bits=10),
    "Mono12": PixelFormatSpec("Mono12", 2, 1, cv2.COLOR_GRAY2RGB, bits=12),
    "RGB8": PixelFormatSpec("RGB8", 3, 3, None),
    "BGR8": PixelFormatSpec("BGR8", 3, 3, cv2.COLOR_BGR2RGB),
    "RGBa8": PixelFormatSpec("RGBa8", 4, 4, cv2.COLOR_RGBA2RGB),
    "BGRa8": PixelFormatSpec("BGRa8", 4, 4, cv2.COLOR_BGRA2RGB),
    **{name: PixelFormatSpec(name, 1, 1, code) for name, code in _BAYER.items()},
}


def unsupported_format_error(name: str, offered: tuple[str, ...] = ()) -> SourceError:
    """The error for a pixel format this inspector cannot convert."""
    usable = [f for f in offered if f in PIXEL_FORMATS]
    if usable:
        hint = f"set source.pixel_format to one the camera offers: {', '.join(usable)}"
    else:
        hint = f"set the camera to one of {', '.join(PIXEL_FORMATS)}" + (
            f" (it offers {', '.join(offered)})" if offered else ""
        )
    return SourceError(f"pixel format {name!r} is not supported", hint)


class PixelConverter:
    """Converts payloads of one format and size into RGB slots."""

    def __init__(self, name: str, width: int, height: int, padding_x: int = 0) -> None:
        spec = PIXEL_FORMATS.get(name)
        if spec is None:
            raise unsupported_format_error(name)
        self.spec = spec
        self.width = width
        self.height = height
        self.row_bytes = width * spec.bytes_per_pixel + padding_x
        self.needed_bytes = self.row_bytes * (height - 1) + width * spec.bytes_per_pixel
        wide = spec.bits > 8
        # the payload as H x W (x C) pixels: built per frame as one plain ndarray
        # over the buffer (np.lib.stride_tricks.as_strided costs ~5x more)
        self._view: tuple[tuple[int, ...], np.dtype[Any], tuple[int, ...]]
        if wide:
            self._view = ((height, width), np.dtype("<u2"), (self.row_bytes, 2))
        elif spec.channels == 1:
            self._view = ((height, width), np.dtype(np.uint8), (self.row_bytes, 1))
        else:
            shape = (height, width, spec.channels)
            self._view = (shape, np.dtype(np.uint8), (self.row_bytes, spec.channels, 1))
        self._scratch16 = np.empty((height, width), dtype=np.uint16) if wide else None
        self._scratch8 = np.empty((height, width), dtype=np.uint8) if wide else None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def source_view(self, payload: np.ndarray) -> np.ndarray:
        """The payload as an H x W (x C) array without copying (rows may be strided);
        `payload` is a contiguous uint8 array of at least `needed_bytes`."""
        shape, dtype, strides = self._view
        view = np.ndarray(shape, dtype, buffer=payload, strides=strides)
        view.flags.writeable = False
        return view

    def convert(self, payload: np.ndarray, slot: np.ndarray) -> None:
        """Write the RGB image of `payload` (uint8, >= needed_bytes) into `slot`."""
        if payload.size < self.needed_bytes:
            raise ValueError(f"payload of {payload.size} bytes < {self.needed_bytes}")
        src = self.source_view(payload)
        spec = self.spec
        if self._scratch16 is not None and self._scratch8 is not None:
            np.right_shift(src, spec.bits - 8, out=self._scratch16)
            np.minimum(self._scratch16, 255, out=self._scratch16)
            np.copyto(self._scratch8, self._scratch16, casting="unsafe")
            src = self._scratch8
        if spec.cv_code is None:
            np.copyto(slot, src)
        else:
            cv2.cvtColor(src, spec.cv_code, dst=slot)
