"""Output and input directories named on a command line: checked, with the argument's name in
every error, before any work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from forestgate.errors import InvalidInput


def directory(field: str, value: object) -> Path:
    """``value`` as a directory path that is not an existing file (it need not exist yet)."""
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise InvalidInput(f"{field}: expected a directory path, got {value!r}")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{field}: {path} exists and is not a directory")
    return path


def writable(field: str, path: Path) -> Path:
    """Create ``path`` if needed and prove a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise InvalidInput(f"{field}: {path} is not writable ({exc.strerror or exc})") from None
    return path
