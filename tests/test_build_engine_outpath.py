"""`rope-inspect build-engine --out`: a file, or a folder under a file, is refused
before the build, with a hint and without a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from rope_inspect.cli import main
from rope_inspect.engine import build


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An .onnx path whose build must never start: --out is checked first."""

    def refuse(path: Path) -> None:
        raise AssertionError("the source was read before --out was checked")

    monkeypatch.setattr(build, "_source_sidecar", refuse)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x09")
    return path


@pytest.mark.parametrize("where", ["afile", "afile/engines"])
def test_out_that_cannot_be_a_folder_is_refused_first(
    model: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    code = main(
        ["--log-format", "json", "build-engine", "--model", str(model),
         "--backend", "onnxruntime", "--precision", "fp32",
         "--out", str(tmp_path / where)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "hint:" in err
    assert "Traceback" not in err
