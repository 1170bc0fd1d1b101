"""Where a command will write its result, checked before the long work that makes it.

`export`, `build-engine`, `calibrate` and `review export` spend seconds to minutes
before they write; a read-only folder, a name that is a folder (or a file where a
folder is wanted) must fail at once, as a ConfigError naming the option, not as a
traceback at the end. The check creates a probe file in the folder (or the nearest
existing folder above it) and removes it again, so it asks the file system itself:
permissions, read-only mounts and full inode tables all show. It creates nothing
that stays.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from rope_inspect.errors import ConfigError

PROBE_PREFIX = ".rope-inspect-probe-"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _probe(folder: Path, option: str, what: str) -> None:
    """The folder, or the nearest one above it that exists, takes a new file.

    Nothing is created: a missing folder is made by the command when it writes.
    """
    base = folder.absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ConfigError(
            f"{option} {what}: {base} exists and is not a folder",
            f"give {option} a path under a folder",
        )
    try:
        fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=base)
    except OSError as exc:
        raise ConfigError(
            f"{option} {what}: cannot write in {base} ({_reason(exc)})",
            f"give {option} a path in a folder you may write to (not read-only, "
            "with free space)",
        ) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_output_file(
    path: Path | str, option: str = "--out", example: str = "out"
) -> Path:
    """`path` may be written as a file: not a folder, its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{option} {path} is a folder; a file name is needed here",
            f"give {option} a file name, e.g. {path / example}",
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(
            f"{option} {path} exists and may not be overwritten",
            f"check its permissions or give {option} another file name",
        )
    _probe(path.parent, option, str(path))
    return path


def check_output_folder(path: Path | str, option: str = "--out") -> Path:
    """`path` may be used as an output folder: not a file, writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{option} {path} is a file; a folder is needed here",
            f"give {option} a folder (one that does not exist yet is created)",
        )
    _probe(path, option, str(path))
    return path
