"""The defect store: per defect a crop, heat-map overlay, map, frame, JSON, index row.

The daemon writes through `DefectStore` (never blocking inspection); the review page
reads through `StoreView`. See `store.py` for the folder layout and `recovery.py` for
what happens after a crash.
"""

from rope_inspect.storage.files import crop_around, make_overlay
from rope_inspect.storage.index import DefectQuery
from rope_inspect.storage.record import DefectRecord, new_defect_id
from rope_inspect.storage.recovery import LostDefect, RecoveryReport
from rope_inspect.storage.store import CloseReport, DefectStore, StoreStatus
from rope_inspect.storage.view import DefectPage, Histogram, StoreView

__all__ = [
    "CloseReport",
    "DefectPage",
    "DefectQuery",
    "DefectRecord",
    "DefectStore",
    "Histogram",
    "LostDefect",
    "RecoveryReport",
    "StoreStatus",
    "StoreView",
    "crop_around",
    "make_overlay",
    "new_defect_id",
]
