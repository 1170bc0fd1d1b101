"""Output paths are checked before the work: a folder given for a file, a file given
for a folder, and a read-only folder are ConfigErrors, and the check leaves nothing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rope_inspect.errors import ConfigError
from rope_inspect.storage.output_paths import (
    PROBE_PREFIX,
    check_output_file,
    check_output_folder,
)


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """A folder nobody may write in: a read-only tmpfs (root) or mode 0o555."""
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)]
    mounted = subprocess.run(mount, capture_output=True, check=False).returncode == 0
    if not mounted:
        path.chmod(0o555)
    try:
        if os.access(path, os.W_OK):
            pytest.skip("cannot make a read-only folder here")
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)
        else:
            path.chmod(0o755)


def test_file_outputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder") as caught:
        check_output_file(tmp_path, "--out", "model.onnx")
    assert str(tmp_path / "model.onnx") in caught.value.hint
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_output_file(tmp_path / "afile" / "m.onnx")
    new = tmp_path / "a" / "b" / "m.onnx"
    assert check_output_file(new) == new
    assert not (tmp_path / "a").exists()  # nothing created
    assert not list(tmp_path.glob(PROBE_PREFIX + "*"))


def test_folder_outputs(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_folder(tmp_path / "afile", "--out")
    assert check_output_folder(tmp_path / "new" / "qa") == tmp_path / "new" / "qa"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_read_only_folder(tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "ro") as ro:
        with pytest.raises(ConfigError, match="cannot write in") as caught:
            check_output_file(ro / "cal.yaml", "--out")
        assert "--out" in caught.value.hint
        with pytest.raises(ConfigError, match="cannot write in"):
            check_output_folder(ro / "engines", "--out")
