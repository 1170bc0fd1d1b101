"""Reading a photograph from disk as the pipeline sees frames: RGB uint8."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rope_inspect.errors import DataError


def read_rgb(path: Path) -> np.ndarray:
    """An RGB uint8 image; DataError naming the file when it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(
            f"cannot read image {path}", "check that the file is a valid PNG/JPEG image"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
