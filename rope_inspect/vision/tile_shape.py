"""The shape of an engine tile: (height, width) in frame pixels.

Tiles need not be square. A rope band is long along the rope and a fixed height
across it (rope plus the envelope margins where defects stick out), so a tile as tall
as the band covers it in one row instead of two (docs/performance.md, tiling). A
plain int everywhere still means a square tile of that side.
"""

from __future__ import annotations

TileShape = tuple[int, int]


def tile_hw(tile: int | tuple[int, int] | list[int]) -> TileShape:
    """(height, width) of `tile`: an int side (square) or a (height, width) pair."""
    if isinstance(tile, int):
        return (tile, tile)
    height, width = tile
    return (int(height), int(width))


def describe(tile: int | tuple[int, int] | list[int]) -> str:
    """'128 px' for a square tile, '224 x 128 px' (height x width) otherwise."""
    height, width = tile_hw(tile)
    return f"{width} px" if height == width else f"{height} x {width} px"


def oriented(along: int, across: int, axis: str) -> TileShape:
    """(height, width) of a tile `along` px along the rope and `across` px across."""
    return (along, across) if axis == "vertical" else (across, along)


def side_keys(axis: str) -> tuple[str, str]:
    """The config keys that set a tile's (height, width) on a line along `axis`."""
    along, across = "tiling.tile", "tiling.tile_across"
    return (along, across) if axis == "vertical" else (across, along)


def config_keys(tile: int | tuple[int, int] | list[int], axis: str) -> str:
    """The tiling settings that give (height, width) tiles on a line along `axis`:
    'tiling.tile: 160, tiling.tile_across: 224' ('... with no tiling.tile_across'
    for a square tile)."""
    height, width = tile_hw(tile)
    if height == width:
        return f"tiling.tile: {width} with no tiling.tile_across"
    along, across = (height, width) if axis == "vertical" else (width, height)
    return f"tiling.tile: {along}, tiling.tile_across: {across}"
