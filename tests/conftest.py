"""Fixtures shared by the daemon's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained DRAEM of the real architecture for the demo config's tiles,
    exported once per session (skips without torch)."""
    pytest.importorskip("torch")
    from rope_inspect.service.injection import export_tiny_model

    return export_tiny_model(tmp_path_factory.getbasetemp() / "tiny-engine.onnx")
