"""Replay of recorded frames as a frame source: a folder of images or a video file.

Images are taken in sorted path order, recursively (png, jpg, bmp, tif); a single
image file is a one-frame folder. Frames are paced at the configured rate (or flat
out), once or looping. The ring has a fixed frame shape: at open the size of every
image is read from its header (PNG, JPEG, BMP; other formats are decoded) and the most
common size wins, so one odd file sorting first cannot make every other frame skip;
the odd files are listed in one warning. An image of another size is skipped and
counted as "wrong_size", a file OpenCV cannot read as "unreadable"; both are logged
with the file name. Each frame carries its file path (`FrameInfo.source_name`) so
ground truth can be matched to it.

A looping folder whose decoded frames fit `decoded_cache_mb` is decoded once: the
first pass keeps each RGB image (and the reason of each skipped file), later passes
copy the kept image into the slot, as a camera buffer is copied, and skip the same
files with the same count and warning. A file changed on disk during the run is
not read again. A larger folder is decoded per frame (logged once at open).
"""

from __future__ import annotations

import math
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import cv2
import numpy as np

from rope_inspect.acquisition.base import (
    Counters,
    FrameInfo,
    FramePacer,
    FrameSkipped,
    SourceFinished,
)
from rope_inspect.errors import SourceError
from rope_inspect.log import get_logger

if TYPE_CHECKING:
    from rope_inspect.config import ReplaySourceConfig

log = get_logger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
ODD_FILES_LOGGED = 20
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(file: Any) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame segment, markers skipped."""
    while True:
        head = file.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return None
        marker, length = head[1], struct.unpack(">H", head[2:])[0]
        if marker in _JPEG_SOF:
            sof = file.read(5)
            return struct.unpack(">HH", sof[1:5]) if len(sof) == 5 else None
        file.seek(length - 2, 1)


def header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an image read from its header, without decoding it
    (PNG, JPEG, BMP); other formats are decoded. None when it cannot be read."""
    try:
        with path.open("rb") as file:
            head = file.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return height, width
            if head[:2] == b"BM" and len(head) >= 26:
                width, height = struct.unpack("<ii", head[18:26])
                return abs(height), width
            if head[:2] == b"\xff\xd8":
                file.seek(2)
                return _jpeg_size(file)
    except (OSError, struct.error):
        return None
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (image.shape[0], image.shape[1])


@dataclass(frozen=True, slots=True)
class _Skipped:
    """Why a file's frame is skipped, kept so later passes need not decode it."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


_Kept = np.ndarray | _Skipped | None
"""A decoded image, why its file is skipped, or None: not decoded yet."""


def _frozen(image: np.ndarray) -> np.ndarray:
    """A read-only copy of an image."""
    copy = image.copy()
    copy.flags.writeable = False
    return copy


def list_images(path: Path) -> list[Path]:
    """Image files under a folder, recursively, in sorted path order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


class ReplaySource:
    """Replays a folder of images or a video file; see the module docstring."""

    name = "replay"

    def __init__(self, cfg: ReplaySourceConfig) -> None:
        self.cfg = cfg
        self.path = Path(cfg.path)
        self._pacer = FramePacer(cfg.fps, cfg.realtime)
        self._counters = Counters()
        self._files: list[Path] = []
        self._names: list[str] = []
        self._decoded: list[_Kept] | None = None
        self._video: Any = None
        self._bgr: np.ndarray | None = None
        self._shape: tuple[int, int, int] | None = None
        self._next = 0
        self._delivered = 0

    @property
    def is_video(self) -> bool:
        return self.path.is_file() and self.path.suffix.lower() not in IMAGE_SUFFIXES

    # -- open / close ------------------------------------------------------------

    def open(self) -> None:
        if not self.path.exists():
            raise SourceError(
                f"replay path {self.path} does not exist",
                "set source.path to a folder of images or a video file",
            )
        if self.is_video:
            self._open_video()
        else:
            self._open_images()
        self._next = 0
        self._pacer.restart()
        log.info(
            "replay_opened", path=str(self.path), shape=self._shape, video=self.is_video
        )

    def _open_images(self) -> None:
        self._files = list_images(self.path)
        if not self._files:
            raise SourceError(
                f"no images (png, jpg, bmp, tif) under {self.path}",
                "point source.path at a folder that holds the frames to replay",
            )
        sizes = {file: header_size(file) for file in self._files}
        votes = Counter(size for size in sizes.values() if size is not None)
        if not votes:
            raise SourceError(
                f"none of the {len(self._files)} images under {self.path} can be read",
                "check the files: OpenCV could not decode any of them",
            )
        (height, width), _ = votes.most_common(1)[0]
        self._shape = (height, width, 3)
        odd = [
            f"{file} {size[1]}x{size[0]}"
            for file, size in sizes.items()
            if size is not None and size != (height, width)
        ]
        if odd:
            log.warning(
                "replay_odd_sizes",
                frame_size=f"{width}x{height}",
                odd=len(odd),
                files=odd[:ODD_FILES_LOGGED],
                note="these frames will be skipped as wrong_size",
            )
        self._names = [str(file) for file in self._files]
        fitting = sum(1 for size in sizes.values() if size == (height, width))
        self._decoded = self._plan_cache(fitting * height * width * 3)

    def _plan_cache(self, needed_bytes: int) -> list[_Kept] | None:
        """Slots for the decoded images when the folder loops and fits the budget."""
        budget_mb = self.cfg.decoded_cache_mb
        if not self.cfg.loop or budget_mb == 0:
            return None
        needed_mb = math.ceil(needed_bytes / 2**20)
        if needed_mb > budget_mb:
            log.info(
                "replay_decodes_per_frame",
                images=len(self._files),
                decoded_mb=needed_mb,
                decoded_cache_mb=budget_mb,
                hint="set source.decoded_cache_mb to decoded_mb or more to decode "
                "each image once (that much memory is kept)",
            )
            return None
        return [None] * len(self._files)

    def _open_video(self) -> None:
        video = cv2.VideoCapture(str(self.path))
        ok, first = video.read() if video.isOpened() else (False, None)
        if not ok or first is None:
            video.release()
            raise SourceError(
                f"cannot read video {self.path}",
                "give a video OpenCV can decode (mp4, avi) or a folder of images",
            )
        self._shape = (first.shape[0], first.shape[1], 3)
        self._bgr = np.empty_like(first)
        video.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._video = video

    def close(self) -> None:
        self._decoded = None  # the kept images' memory goes with the source
        if self._video is not None:
            self._video.release()
            self._video = None

    # -- properties --------------------------------------------------------------

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        if self._shape is None:
            raise SourceError("replay not open", "call open() first")
        return self._shape

    @property
    def node_map(self) -> None:
        return None

    @property
    def counters(self) -> dict[str, int]:
        return self._counters.snapshot()

    # -- frames ------------------------------------------------------------------

    def read_into(self, slot: np.ndarray, timeout_s: float) -> FrameInfo | None:
        if not self._pacer.wait(timeout_s):
            return None
        if self._video is not None:
            name = self._read_video(slot)
        else:
            name = self._read_image(slot)
        info = FrameInfo(
            timestamp_ns=time.monotonic_ns(),
            camera_frame_id=self._delivered,
            source_name=name,
        )
        self._delivered += 1
        return info

    def _end_of_pass(self) -> None:
        if not self.cfg.loop:
            raise SourceFinished(str(self.path))
        log.info("replay_loop", path=str(self.path), frames=self._delivered)
        self._next = 0

    def _read_image(self, slot: np.ndarray) -> str:
        if self._next >= len(self._files):
            self._end_of_pass()
        index = self._next
        self._next += 1
        kept = None if self._decoded is None else self._decoded[index]
        if kept is None:
            kept = self._decode(index, slot)
        if isinstance(kept, _Skipped):
            self._skip(kept.reason, self._files[index], **kept.details)
        if kept is not slot:
            np.copyto(slot, kept)
        return self._names[index]

    def _decode(self, index: int, slot: np.ndarray) -> np.ndarray | _Skipped:
        """Decode a file into the slot (kept when caching): the slot, or why not."""
        image = cv2.imread(self._names[index], cv2.IMREAD_COLOR)
        result: np.ndarray | _Skipped = slot
        if image is None:
            result = _Skipped("unreadable")
        elif image.shape != slot.shape:
            details = {"size": image.shape[:2], "expected": slot.shape[:2]}
            result = _Skipped("wrong_size", details)
        else:
            cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=slot)
        if self._decoded is not None:
            self._decoded[index] = result if result is not slot else _frozen(slot)
        return result

    def _skip(self, reason: str, file: Path, **details: Any) -> NoReturn:
        self._counters.add(reason)
        log.warning("replay_frame_skipped", reason=reason, file=str(file), **details)
        raise FrameSkipped(reason)

    def _read_video(self, slot: np.ndarray) -> str:
        ok, image = self._video.read(self._bgr)
        if not ok:
            self._end_of_pass()
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._video.read(self._bgr)
            if not ok:
                raise SourceFinished(str(self.path))
        number = self._next
        self._next += 1
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=slot)
        return f"{self.path}#{number}"
