"""One journal, one daemon: an exclusive lock on a lock file beside the journal, held while the daemon runs.

Two daemons on one journal would both deliver every alert and could both top up. `flock` is released by the
kernel when the process ends however it ends (kill -9 included), so a lock is never left stale; the lock file
names its holder for the refusal message. Read-only commands (`history`, `status`) and `silence` do not take it:
SQLite's own locking keeps their short transactions apart from the daemon's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path


class JournalLocked(Exception):
    """Another daemon holds the journal: do not start (exit 2); stop that one or use another storage_path."""

    def __init__(self, journal: Path, holder: str | None) -> None:
        by = f" ({holder})" if holder else ""
        super().__init__(
            f"the journal {journal} is in use by another marginguard{by}: one journal serves one daemon; "
            "stop that one first, or give this one its own daemon.storage_path"
        )
        self.journal = journal
        self.holder = holder


class JournalLock:
    def __init__(self, journal: Path | str) -> None:
        self.journal = Path(journal)
        self.path = self.journal.with_name(self.journal.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `JournalLocked` (OSError when the lock file cannot be created at all)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode("utf-8", "replace").strip() or None
            os.close(fd)
            raise JournalLocked(self.journal, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> JournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class NoLock:
    """For a PostgreSQL journal, which the database itself locks (or shares among a cluster's instances)."""

    path = Path("/dev/null")

    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None
