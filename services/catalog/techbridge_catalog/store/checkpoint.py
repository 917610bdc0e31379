"""SQLite: WAL checkpoints after a bulk import run in a thread of their own, off the request.

In WAL mode a commit appends the changed pages to the WAL; a checkpoint copies them into the
database file and fsyncs both files. By default the committing connection checkpoints itself
once the WAL holds 1,000 pages, inside the commit: a 2,000-row import at 90,000 listings
writes ~5,000 pages, so every import request copied ~20 MiB and waited for two fsyncs before
it could answer (~130-150 ms of a ~1 s request, measured around the commit). An importing
connection therefore commits without checkpointing (see `repository.tune_for_import`) and,
when it returns to the pool, asks the file's `Checkpointer` for a PASSIVE checkpoint, which
a thread with its own connection runs while the next request is parsed, validated and mapped
on the other core.

A PASSIVE checkpoint never waits for a lock and never blocks a writer or a reader: it copies
what no reader still needs. Requests while one runs are folded into one more run after it.
The WAL stays bounded: SQLite starts it from its beginning again (reusing the file) at the
first write of a transaction that began once every frame was copied. An import therefore
begins its transaction only after a checkpoint still running (`settle`, called once its rows
are validated, at most `imports.SETTLE_S`): without that, an import that began while the
previous one's checkpoint ran appended to the WAL, which grew to 170-215 MiB over ten imports;
with it the WAL stays at one import's frames (~43 MiB for 2,000 rows at 100,000 listings).
Should the thread fall behind anyway, the importing connection's own auto-checkpoint comes
back at `IMPORT_WAL_BACKSTOP_KIB` of WAL.

Durability is the store's as before (WAL with synchronous=NORMAL): a commit survives a crash
of the process at once, and a power loss or an operating system crash once the next
checkpoint has synced the WAL, which now happens right after the import answers instead of
just before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from urllib.parse import quote

log = logging.getLogger(__name__)


class Checkpointer:
    """PASSIVE checkpoints of one SQLite file, one at a time, in a worker thread."""

    _files: dict[str, Checkpointer] = {}
    _files_lock = threading.Lock()

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.runs = 0
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, frames checkpointed)

    @classmethod
    def of(cls, path: str) -> Checkpointer:
        with cls._files_lock:
            found = cls._files.get(path)
            if found is None:
                found = cls._files[path] = cls(path)
            return found

    def request(self) -> None:
        """Checkpoint soon, in the background (returns at once)."""
        with self._lock:
            self._pending = True
            if self._thread is not None:
                return  # the running thread sees the request when its checkpoint ends
            self._idle.clear()
            self._thread = threading.Thread(target=self._run, name="catalog-wal-checkpoint")
        self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until no checkpoint is running or asked for."""
        return self._idle.wait(timeout)

    @classmethod
    def settle(cls, timeout: float) -> None:
        """Wait (at most `timeout` seconds in all) for the checkpoints running in this process."""
        with cls._files_lock:
            running = [c for c in cls._files.values() if not c._idle.is_set()]
        deadline = time.monotonic() + timeout
        for c in running:
            c.wait_idle(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._thread = None
                    self._idle.set()
                    return
                self._pending = False
            try:
                self.last = checkpoint(self.path)
                self.runs += 1
            except Exception:  # noqa: BLE001 - the next request (or a commit's own) will try again
                log.warning("background WAL checkpoint of %s failed", self.path, exc_info=True)


def checkpoint(path: str) -> tuple[int, int, int]:
    """One PASSIVE checkpoint of the file: (busy, WAL frames, frames checkpointed)."""
    # mode=rw: a file that is gone (a store dropped meanwhile) is not created again
    conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=0, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")  # the store's setting: WAL synced, then the file
        return tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
    finally:
        conn.close()
