"""The ring buffer between the acquisition thread and the inspection stage.

All frame memory is allocated once, at construction: `slots` images plus one spare.
The writer (one acquisition thread) never blocks: when every slot holds an unread
frame, the oldest unread frame is dropped and counted; when the reader holds every
slot, the frame goes into the spare and is dropped at once (still counted), so the
camera is drained either way. The reader gets frames whose image is a view of a
slot and must `release` each one.

Invariant (under the lock): written == read + dropped + pending.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from rope_inspect.acquisition.base import FrameInfo
from rope_inspect.frame import Frame


@dataclass(frozen=True, slots=True)
class RingStats:
    """Counters of a ring at one moment."""

    written: int
    dropped: int
    read: int
    pending: int
    held: int


class FrameRing:
    """Preallocated frame slots, drop-oldest, thread-safe for one writer."""

    def __init__(self, slots: int, shape: tuple[int, int, int]) -> None:
        if slots < 1:
            raise ValueError("a ring needs at least one slot")
        self.shape = tuple(shape)
        self.slots = slots
        self._spare = slots
        self._images = np.zeros((slots + 1, *shape), dtype=np.uint8)
        self._views = [self._images[i] for i in range(slots + 1)]
        self._free: deque[int] = deque(range(slots), maxlen=slots)
        self._ready: deque[int] = deque(maxlen=slots)
        self._held = [False] * (slots + 1)
        self._info: list[FrameInfo | None] = [None] * (slots + 1)
        self._index = [0] * (slots + 1)
        self._writing: int | None = None
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._written = 0
        self._dropped = 0
        self._read = 0

    # -- writer side -------------------------------------------------------------

    def begin_write(self) -> np.ndarray:
        """Reserve a slot for the next frame and return its image (H x W x 3)."""
        with self._cond:
            if self._writing is not None:
                raise RuntimeError("begin_write called twice without commit or abort")
            if self._free:
                slot = self._free.popleft()
            elif self._ready:
                slot = self._ready.popleft()
                self._dropped += 1
            else:
                slot = self._spare
            self._writing = slot
            return self._views[slot]

    def commit(self, info: FrameInfo) -> int:
        """Publish the reserved slot as a frame; returns its frame index."""
        with self._cond:
            slot = self._take_writing()
            index = self._written
            self._written += 1
            if slot == self._spare:
                self._dropped += 1
                return index
            self._info[slot] = info
            self._index[slot] = index
            self._ready.append(slot)
            self._cond.notify()
            return index

    def abort_write(self) -> None:
        """Give the reserved slot back unused (timeout or error)."""
        with self._cond:
            slot = self._take_writing()
            if slot != self._spare:
                self._free.append(slot)

    def _take_writing(self) -> int:
        slot = self._writing
        if slot is None:
            raise RuntimeError("no slot reserved: call begin_write first")
        self._writing = None
        return slot

    # -- reader side -------------------------------------------------------------

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """The oldest unread frame, waiting up to timeout_s; None on timeout/close."""
        with self._cond:
            if not self._ready and not self._closed:
                self._cond.wait_for(
                    lambda: bool(self._ready) or self._closed, timeout_s
                )
            if not self._ready:
                return None
            slot = self._ready.popleft()
            self._held[slot] = True
            self._read += 1
            info = self._info[slot]
            self._info[slot] = None
        if info is None:
            raise RuntimeError("ring slot without frame info")
        return Frame(
            index=self._index[slot],
            timestamp_ns=info.timestamp_ns,
            camera_frame_id=info.camera_frame_id,
            image=self._views[slot],
            position_m=info.position_m,
            encoder_count=info.encoder_count,
            source_name=info.source_name,
            truth=info.truth,
        )

    def release(self, frame: Frame) -> None:
        """Give a frame's slot back to the writer; its image is invalid after."""
        with self._cond:
            slot = self._slot_of(frame)
            self._held[slot] = False
            self._free.append(slot)
            self._cond.notify_all()  # a writer may wait for a free slot

    def _slot_of(self, frame: Frame) -> int:
        for slot in range(self.slots):
            if self._views[slot] is frame.image:
                if not self._held[slot]:
                    raise ValueError("frame released twice")
                return slot
        raise ValueError("frame does not come from this ring")

    def wait_for_free_slot(self, timeout_s: float) -> bool:
        """Wait until the next `begin_write` gets a free slot (and drops nothing) or
        the ring is closed; True when either holds, False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: bool(self._free) or self._closed, timeout_s
            )

    # -- both --------------------------------------------------------------------

    def close(self) -> None:
        """Wake a waiting reader; frames already written can still be read."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> RingStats:
        with self._cond:
            return RingStats(
                written=self._written,
                dropped=self._dropped,
                read=self._read,
                pending=len(self._ready),
                held=sum(self._held),
            )
