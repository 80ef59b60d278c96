"""Whether the journal can live where the configuration puts it, judged before anything starts.

A journal path that cannot be written would pass validation and crash `run` later with a traceback (or, for
`check-config`, not at all); it is refused up front in one line instead. The journal creates missing parent
directories, and SQLite writes its -wal and -shm files beside the journal, so the nearest existing ancestor
must be a writable directory, and an existing journal a writable regular file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def storage_problem(path: Path) -> str | None:
    """Why the journal cannot be created or written at `path` (absolute), or None when it can."""
    if path.exists() or path.is_symlink():
        if path.is_dir():
            return f"{path} is a directory; give a file path such as {path / 'marginguard.sqlite'}"
        if not path.is_file():
            return f"{path} is not a regular file"
        if not _journal_or_empty(path):
            return f"{path} is not an SQLite database (a marginguard journal); is it the file you meant?"
        try:
            # Opened for appending and closed at once: the file is not changed, but permissions, a read-only
            # mount and the like answer truthfully (os.access would not, for root).
            with path.open("ab"):
                pass
        except OSError as error:
            return f"{path} cannot be written: {error.strerror}"
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            return f"{ancestor} is a broken symbolic link"
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory, so {path} cannot be created"
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as error:
        return f"{path} cannot be created in {ancestor}: {error.strerror}"
    return None


SQLITE_HEADER = b"SQLite format 3\x00"


def _journal_or_empty(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError:
        return True  # unreadable: said by the write check, in its own words
    return head in (b"", SQLITE_HEADER)
