"""rope-inspect: real-time inspection of fibre rope on a production line."""

__version__ = "0.1.0"
