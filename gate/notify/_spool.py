"""A bounded on-disk queue in front of each sink: nothing lost in an outage, nothing sent twice.

One SQLite file per sink (named by the sink's key, so sinks can share a
directory). ``pending`` holds events in arrival order; ``sent`` remembers the
IDs already delivered, so an event put again — after a restart, or by a
sweep that sees the same state — is dropped instead of re-sent. SQLite gives
atomic commits across a crash for free, which a directory of JSON-lines
segments would have to reinvent.

Delivery is exactly once except in one window: the process dies after the
sink accepted a batch and before its IDs are recorded as sent. Then that
batch goes again on restart, and receivers can dedupe by event ID (the
webhook's ``X-Sealgate-Event-Id``; InfluxDB overwrites an identical point).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from gate.notify._base import Event, Sink, SinkError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sent_seq ON sent (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_READ_BATCH = 500


class Spool:
    """Events for one sink, kept on disk until the sink takes them.

    ``put`` never talks to the sink; ``flush`` does, and a sink failure never
    escapes it: the events stay, the outage is logged once, and the next try
    backs off (1 s doubling to ``max_backoff``) unless ``force`` is given.
    Only a broken spool file raises (``SinkError`` naming the file).
    At most ``max_events`` wait; beyond that the oldest are dropped (logged
    with a count), and as many sent IDs are remembered for dedupe.
    """

    def __init__(
        self,
        directory: Path,
        sink: Sink,
        max_events: int = 100_000,
        *,
        max_backoff: float = 30.0,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.sink = sink
        self.max_events = max_events
        self.max_backoff = max_backoff
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{sink.kind}-{sink.key[:16]}.sqlite3"
        self._db_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._down = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self._unrecorded: dict[int, str] = {}
        """Delivered events whose "sent" mark could not be written (a full disk): never resent."""
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('sink', ?)", (sink.name,))
        except sqlite3.Error as e:
            raise SinkError(f"cannot open the spool {self.path} for {sink.name}: {e}") from e
        waiting = self.pending()
        if waiting:
            log.info("%s: %d spooled events from an earlier run await delivery", sink.name, waiting)

    # --- queue -------------------------------------------------------------------------

    def put(self, events: Iterable[Event]) -> None:
        """Queue events after those already waiting; IDs already sent or queued are skipped."""
        rows = [(e.id, json.dumps(e.to_dict(), sort_keys=True)) for e in events]
        if not rows:
            return
        with self._db_lock, self._transaction():
            for ident, body in rows:
                if (
                    ident in self._unrecorded.values()
                    or self._db.execute("SELECT 1 FROM sent WHERE id = ?", (ident,)).fetchone()
                ):
                    log.debug("%s: event %s was already sent; skipped", self.sink.name, ident)
                    continue
                self._db.execute(
                    "INSERT OR IGNORE INTO pending (id, event) VALUES (?, ?)", (ident, body)
                )
            excess = self._count("pending") - self.max_events
            if excess > 0:
                self._db.execute(
                    "DELETE FROM pending WHERE seq IN "
                    "(SELECT seq FROM pending ORDER BY seq LIMIT ?)",
                    (excess,),
                )
        if excess > 0:
            log.warning(
                "%s: the spool is full (%d events); dropped the %d oldest undelivered events",
                self.sink.name,
                self.max_events,
                excess,
            )

    def pending(self) -> int:
        """How many events wait."""
        with self._db_lock:
            return self._count("pending") - len(self._unrecorded)

    def flush(self, force: bool = False) -> int:
        """Send waiting events in order; return how many were delivered by this call."""
        with self._flush_lock:
            if not force and time.monotonic() < self._retry_at:
                return 0
            delivered = 0
            self._record_unrecorded()
            while True:
                batch = self._head()
                if not batch:
                    break
                seqs = [seq for seq, _ in batch]
                events = [event for _, event in batch]
                try:
                    self.sink.send(events)
                except SinkError as e:
                    self._mark_sent(seqs[: e.delivered], events[: e.delivered])
                    self._failed(e)
                    return delivered + e.delivered
                self._mark_sent(seqs, events)
                delivered += len(events)
            if self._down:
                log.warning(
                    "%s is reachable again; delivered %d spooled events", self.sink.name, delivered
                )
            self._down, self._backoff, self._retry_at = False, 0.0, 0.0
            return delivered

    def writable(self) -> bool:
        """Whether a write commits now (a probe row in ``meta``): has a full disk recovered?"""
        try:
            with self._db_lock, self._transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (str(time.time()),)
                )
        except SinkError:
            return False
        return True

    def close(self) -> None:
        """Close the file; pending events stay for the next ``Spool`` on this directory."""
        with self._db_lock:
            self._db.close()

    # --- internals ---------------------------------------------------------------------

    def _head(self) -> list[tuple[int, Event]]:
        """The oldest waiting events; rows that no longer parse are dropped with a log line."""
        with self._db_lock:
            rows = self._db.execute(
                "SELECT seq, event FROM pending ORDER BY seq LIMIT ?",
                (_READ_BATCH + len(self._unrecorded),),
            ).fetchall()
            good: list[tuple[int, Event]] = []
            for seq, body in rows:
                if seq in self._unrecorded:
                    continue
                try:
                    good.append((seq, Event.from_dict(json.loads(body))))
                except (ValueError, KeyError, TypeError) as e:
                    log.warning("%s: dropped an unreadable spooled event: %s", self.sink.name, e)
                    self._db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
            return good

    def _record_unrecorded(self) -> None:
        """Write the "sent" marks a full disk refused earlier (``SinkError`` if it still does)."""
        if self._unrecorded:
            marks = dict(self._unrecorded)
            self._write_sent(list(marks), list(marks.values()))
            for seq in marks:
                self._unrecorded.pop(seq, None)

    def _mark_sent(self, seqs: list[int], events: list[Event]) -> None:
        if not seqs:
            return
        try:
            self._write_sent(seqs, [e.id for e in events])
        except SinkError:
            self._unrecorded.update(zip(seqs, (e.id for e in events), strict=True))
            raise

    def _write_sent(self, seqs: list[int], ids: list[str]) -> None:
        with self._db_lock, self._transaction():
            self._db.executemany("DELETE FROM pending WHERE seq = ?", [(s,) for s in seqs])
            self._db.executemany(
                "INSERT OR REPLACE INTO sent (id, seq) VALUES (?, ?)",
                list(zip(ids, seqs, strict=True)),
            )
            # Remember as many sent IDs as the queue may hold; forget the oldest.
            self._db.execute(
                "DELETE FROM sent WHERE seq < (SELECT seq FROM sent ORDER BY seq DESC "
                "LIMIT 1 OFFSET ?)",
                (self.max_events - 1,),
            )

    def _failed(self, error: SinkError) -> None:
        """Log the first failure of an outage only; back off before the next try."""
        self._backoff = min(self.max_backoff, self._backoff * 2 or 1.0)
        self._retry_at = time.monotonic() + self._backoff
        if self._down:
            log.debug("%s still unavailable: %s", self.sink.name, error)
            return
        self._down = True
        waiting = self.pending()
        if error.permanent:
            log.error(
                "%s; this will not fix itself (check the URL, database or token). "
                "Keeping %d events in the spool and retrying.",
                error,
                waiting,
            )
        else:
            log.warning("%s; keeping %d events in the spool and retrying.", error, waiting)

    def _count(self, table: str) -> int:
        row = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One atomic change: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK if the block raised."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # A COMMIT refused by a full disk leaves the transaction open: end it, or
                # every later BEGIN fails too.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise SinkError(f"cannot write the spool {self.path}: {e}") from e
