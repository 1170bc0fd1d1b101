"""`rope-inspect train` with a dataset folder that does not exist: a DataError whose
hint names options `train` really has (no --data there)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rope_inspect.errors import DataError
from rope_inspect.training.commands import train_command

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "train" / "mvtec3d-rope.yaml"


def test_missing_data_folder_hint_names_real_options(tmp_path: Path) -> None:
    missing = tmp_path / "nodata"
    args = argparse.Namespace(
        config=RECIPE, set=[f"data.root={missing}"], out=tmp_path / "run", resume=False
    )
    with pytest.raises(DataError, match="does not exist") as caught:
        train_command(args)
    assert "--set data.root=" in caught.value.hint
    assert "--data" not in caught.value.hint
    assert not (tmp_path / "run").exists()
