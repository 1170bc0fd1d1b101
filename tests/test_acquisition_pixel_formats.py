"""Pixel format conversion into RGB slots, on synthetic payloads of every format."""

from __future__ import annotations

import numpy as np
import pytest

from rope_inspect.acquisition.pixel_formats import PIXEL_FORMATS, PixelConverter
from rope_inspect.errors import SourceError

H, W = 6, 8
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
MONO = RNG.integers(0, 256, (H, W), dtype=np.uint8)


def _convert(name: str, payload: np.ndarray, padding_x: int = 0) -> np.ndarray:
    converter = PixelConverter(name, W, H, padding_x)
    slot = np.zeros((H, W, 3), np.uint8)
    address = slot.__array_interface__["data"][0]
    converter.convert(np.ascontiguousarray(payload).reshape(-1), slot)
    assert slot.__array_interface__["data"][0] == address  # written in place
    return slot


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("RGB8", RGB),
        ("BGR8", RGB[..., ::-1]),
        ("RGBa8", np.dstack([RGB, np.full((H, W), 9, np.uint8)])),
        ("BGRa8", np.dstack([RGB[..., ::-1], np.full((H, W), 9, np.uint8)])),
    ],
)
def test_colour_formats_give_the_same_rgb(name: str, payload: np.ndarray) -> None:
    assert np.array_equal(_convert(name, payload), RGB)


def test_mono8_is_grey_rgb() -> None:
    slot = _convert("Mono8", MONO)
    for channel in range(3):
        assert np.array_equal(slot[..., channel], MONO)


@pytest.mark.parametrize(("name", "bits"), [("Mono10", 10), ("Mono12", 12)])
def test_wide_mono_is_unpacked_little_endian_and_scaled(name: str, bits: int) -> None:
    values = RNG.integers(0, 1 << bits, (H, W)).astype("<u2")
    slot = _convert(name, values.view(np.uint8))
    assert np.array_equal(slot[..., 1], (values >> (bits - 8)).astype(np.uint8))


def test_wide_mono_clamps_garbage_high_bits() -> None:
    values = np.full((H, W), 0xFFFF, "<u2")
    assert (_convert("Mono10", values.view(np.uint8)) == 255).all()


def test_line_padding_is_skipped() -> None:
    padded = np.zeros((H, W * 3 + 5), np.uint8)
    padded[:, : W * 3] = RGB.reshape(H, -1)
    converter = PixelConverter("RGB8", W, H, padding_x=5)
    assert converter.needed_bytes == (W * 3 + 5) * (H - 1) + W * 3
    slot = np.zeros((H, W, 3), np.uint8)
    converter.convert(padded.reshape(-1)[: converter.needed_bytes], slot)
    assert np.array_equal(slot, RGB)


# GenICam Bayer names give the colour of the top-left 2x2 cell, row by row.
_CELL = {
    "BayerRG8": ((0, 1), (1, 2)),
    "BayerGR8": ((1, 0), (2, 1)),
    "BayerGB8": ((1, 2), (0, 1)),
    "BayerBG8": ((2, 1), (1, 0)),
}


@pytest.mark.parametrize("name", sorted(_CELL))
def test_bayer_patterns_demosaic_to_the_right_colour(name: str) -> None:
    colour = np.array([200, 110, 30], np.uint8)
    mosaic = np.zeros((H, W), np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            mosaic[dy::2, dx::2] = colour[_CELL[name][dy][dx]]
    slot = _convert(name, mosaic)
    inner = slot[2:-2, 2:-2].reshape(-1, 3).astype(int)
    assert np.abs(inner - colour.astype(int)).max() <= 2


def test_short_payload_and_unknown_format_are_refused() -> None:
    converter = PixelConverter("Mono8", W, H)
    with pytest.raises(ValueError, match="payload"):
        converter.convert(np.zeros(W * H - 1, np.uint8), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(SourceError, match="'YUV422_8'") as err:
        PixelConverter("YUV422_8", W, H)
    assert "Mono8" in err.value.hint


def test_the_issue_list_of_formats_is_supported() -> None:
    wanted = {"Mono8", "Mono10", "Mono12", "RGB8", "BGR8", "RGBa8", "BGRa8"}
    wanted |= {f"Bayer{p}8" for p in ("RG", "GR", "GB", "BG")}
    assert wanted <= set(PIXEL_FORMATS)
