"""Views of frame buffers made once per buffer, for checks on the hot path.

Slicing a frame (`image[::4, ::4]`, a reshape) creates a new numpy view object, a few
hundred bytes, every time. The daemon's frames are the ring's slot arrays, the same
objects frame after frame, so a check that needs a view of each frame keeps the view
it made for each slot it has seen and allocates nothing after the first round.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

VIEW_CACHE = 32  # frame buffers remembered (the ring's slots plus its spare)


class ViewCache:
    """`get(image)` -> `make(image)`, made once per frame buffer object.

    Keyed by identity, checked with `is`: a new array with a recycled id gets its own
    view. A caller handing a new array every frame keeps up to `size` of them alive
    (the view refers to their memory); beyond `size` buffers it forgets them all.
    """

    def __init__(
        self, make: Callable[[np.ndarray], np.ndarray], size: int = VIEW_CACHE
    ) -> None:
        self.make = make
        self.size = size
        self._views: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, image: np.ndarray) -> np.ndarray:
        cached = self._views.get(id(image))
        if cached is None or cached[0] is not image:
            if len(self._views) >= self.size:
                self._views.clear()
            cached = (image, self.make(image))
            self._views[id(image)] = cached
        return cached[1]

    def clear(self) -> None:
        self._views.clear()
