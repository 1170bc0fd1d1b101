"""QA review of stored defects: a web page over the defect store, and dataset export.

`rope-inspect review --store DIR` serves the page (FastAPI + uvicorn, 127.0.0.1 by
default): a grid of defects newest first with crop, heat map on hover (or `h` for
all), score, area, rope position, time, line and reject state; filters, sorting,
a detail view with the full frame, verdict buttons and keys (j/k, d, f, u, o), counts
per verdict and charts. `rope-inspect review --store DIR export --verdict ... --out
OUT` writes the verdicts as an MVTec-layout dataset (see `export.py`).
Access rules: `security.py`. The app: `app.create_app(ReviewSettings(...))`.
"""
