"""The gateway's store-and-forward spool: SQLite in WAL mode.

Ingest: every decoded record is inserted in one transaction with its stream's watermark, *then* the
device is acknowledged. Per stream (device id, boot id) the spool keeps `hi`, the highest sequence number
ever committed: a record with seq <= hi is a duplicate (the device resent it) and is counted, not stored;
seq > hi + 1 means records hi+1..seq-1 never reached the gateway (lost at the device or on the wire) and
the gap is recorded. This assumes a device sends each boot's records in increasing seq order (the
protocol's telemetry is; a device-side spool must drain oldest-first).

Identity: a resent record must be the same record. The spool keeps a short digest of every committed record
(`seen`, the most recent SEEN_MAX). A record with seq <= hi whose digest differs from the committed one, or
that falls inside a recorded gap (another source jumped the sequence), is a *conflict*: another source
claims this device's (boot, seq). It is neither stored as telemetry nor counted as a duplicate nor acked
(the caller acks only below the first conflict, so the real board keeps it); it goes to the `conflicts`
table and the caller logs, counts and publishes it. A record older than the digests kept is a duplicate.

Forward: rows are published in id order (= arrival order, so per-stream seq order) and deleted when
the broker acknowledges them (PUBACK); the delete and the stream's `delivered` watermark commit together.

Durability: `synchronous=NORMAL` (default) survives a crash of the relay process (SIGKILL, exceptions)
but a power loss can roll back the last commits; `fsync=True` (synchronous=FULL) survives power loss too,
at a cost in throughput.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    device   TEXT    NOT NULL,
    boot     INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    rx_time  REAL    NOT NULL,
    body     BLOB    NOT NULL          -- the record as JSON (see Spool.encode)
);
CREATE TABLE IF NOT EXISTS streams (
    device    TEXT    NOT NULL,
    boot      INTEGER NOT NULL,
    first     INTEGER NOT NULL,        -- first seq the gateway saw of this stream
    hi        INTEGER NOT NULL,        -- highest seq committed
    delivered INTEGER NOT NULL DEFAULT 0, -- highest seq acknowledged by the broker
    records   INTEGER NOT NULL DEFAULT 0,
    dups      INTEGER NOT NULL DEFAULT 0,
    lost      INTEGER NOT NULL DEFAULT 0, -- records in gaps (never reached the gateway)
    updated   REAL    NOT NULL,
    PRIMARY KEY (device, boot)
);
CREATE TABLE IF NOT EXISTS gaps (
    device TEXT NOT NULL, boot INTEGER NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    device TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, digest BLOB NOT NULL,
    PRIMARY KEY (device, boot, seq)
);
CREATE TABLE IF NOT EXISTS conflicts (
    device TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, why TEXT NOT NULL, body BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

POLICIES = ("block", "drop-oldest")
SEEN_MAX = 500_000           # record digests kept to tell a resend from an impostor: 74 B each in SQLite
                             # (measured), ~37 MB; a board resends at most its spool (~2,000 records)


def digest(rec: dict) -> bytes:
    """What identifies a record's content (not when or how it arrived): uptime, kind and its SenML."""
    import hashlib
    body = json.dumps([rec.get("uptime_ms"), rec.get("kind"), rec.get("records")], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).digest()[:8]


class SpoolError(Exception):
    """A one-line problem with the spool file (bad path, not a spool, disk full)."""


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    lost: int = 0            # records missing in gaps detected by this batch
    dropped_oldest: int = 0  # rows evicted by the drop-oldest policy
    blocked: bool = False    # the spool is full and the policy is "block": nothing was stored
    conflicts: list = None   # [(boot, seq, why)]: records another source also claims (not stored, not to ack)


class Spool:
    def __init__(self, path: str, max_records: int = 1_000_000, policy: str = "block", fsync: bool = False):
        if policy not in POLICIES:
            raise SpoolError(f"unknown spool policy {policy!r}: use one of {', '.join(POLICIES)}")
        self.path = str(path)
        self.max_records = max_records
        self.policy = policy
        self.lock = threading.RLock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise SpoolError(f"cannot use {self.path} as the relay spool: {e}") from None
        self.streams: dict[tuple[str, int], list] = {}
        for dev, boot, hi, delivered in self.db.execute("SELECT device, boot, hi, delivered FROM streams"):
            self.streams[(dev, boot)] = [hi, delivered]
        self._depth = self.db.execute("SELECT count(*) FROM spool").fetchone()[0]
        self._seen = self.db.execute("SELECT count(*) FROM seen").fetchone()[0]

    def _conflict(self, device: str, r: dict, d: bytes, batch: dict) -> str | None:
        """Why a record at or below its stream's hi is not a plain resend, or None (a duplicate)."""
        boot, seq = r["boot"], r["seq"]
        known = batch.get((boot, seq))
        if known is None:
            row = self.db.execute("SELECT digest FROM seen WHERE device=? AND boot=? AND seq=?",
                                  (device, boot, seq)).fetchone()
            known = row[0] if row else None
        if known is not None:
            return None if known == d else "same device, boot and seq as a stored record, different content"
        if self.db.execute("SELECT 1 FROM gaps WHERE device=? AND boot=? AND ? BETWEEN from_seq AND to_seq LIMIT 1",
                           (device, boot, seq)).fetchone():
            return "a record inside a gap another source's higher seq made"
        return None

    def conflict_rows(self) -> list[tuple]:
        with self.lock:
            return self.db.execute("SELECT device, boot, seq, why FROM conflicts ORDER BY rowid").fetchall()

    # -- ingest ----------------------------------------------------------------------------------
    @staticmethod
    def encode(rec: dict) -> bytes:
        return json.dumps(rec, separators=(",", ":")).encode()

    def ingest(self, device: str, recs: list[dict]) -> IngestResult:
        """Commit a batch of one device's records (dicts with boot, seq, rx_time, ...) in one transaction."""
        res = IngestResult(conflicts=[])
        now = time.time()
        with self.lock:
            new = []
            digests: dict[tuple, bytes] = {}     # this batch's committed records
            touched: dict[tuple, dict] = {}      # this batch's view of each stream
            for r in recs:
                key = (device, r["boot"])
                st = touched.get(key)
                if st is None:
                    known = self.streams.get(key)
                    if known is None:
                        st = {"hi": r["seq"] - 1, "delivered": 0, "first": r["seq"], "n": 0, "dups": 0, "lost": 0}
                    else:
                        st = {"hi": known[0], "delivered": known[1], "first": None, "n": 0, "dups": 0, "lost": 0}
                    touched[key] = st
                d = digest(r)
                if r["seq"] <= st["hi"]:
                    why = self._conflict(device, r, d, digests)
                    if why:
                        res.conflicts.append((r["boot"], r["seq"], why))
                        new.append(("conflict", device, r["boot"], r["seq"], why, self.encode(r), now))
                        continue
                    res.duplicates += 1
                    st["dups"] += 1
                    continue
                digests[(r["boot"], r["seq"])] = d
                if r["seq"] > st["hi"] + 1:
                    missing = r["seq"] - st["hi"] - 1
                    res.lost += missing
                    st["lost"] += missing
                    new.append(("gap", device, r["boot"], st["hi"] + 1, r["seq"] - 1))
                st["hi"] = r["seq"]
                st["n"] += 1
                new.append(("rec", device, r["boot"], r["seq"], r["rx_time"], self.encode(r)))
            stored = [x for x in new if x[0] == "rec"]
            if stored and self.max_records and self._depth + len(stored) > self.max_records:
                if self.policy == "block":
                    res.blocked = True
                    res.duplicates = 0
                    res.lost = 0
                    return res
            try:
                self.db.execute("BEGIN IMMEDIATE")
                if stored:
                    self.db.executemany("INSERT INTO spool(device, boot, seq, rx_time, body) VALUES (?,?,?,?,?)",
                                        [x[1:] for x in stored])
                if digests:
                    self.db.executemany("INSERT OR REPLACE INTO seen(device, boot, seq, digest) VALUES (?,?,?,?)",
                                        [(device, b, q, d) for (b, q), d in digests.items()])
                    self._seen += len(digests)
                    if self._seen > SEEN_MAX + SEEN_MAX // 10:
                        self.db.execute("DELETE FROM seen WHERE rowid <= (SELECT max(rowid) FROM seen) - ?",
                                        (SEEN_MAX,))
                        self._seen = SEEN_MAX
                cf = [x for x in new if x[0] == "conflict"]
                if cf:
                    self.db.executemany("INSERT INTO conflicts(device, boot, seq, why, body, at) VALUES (?,?,?,?,?,?)",
                                        [x[1:] for x in cf])
                gaps = [x for x in new if x[0] == "gap"]
                if gaps:
                    self.db.executemany("INSERT INTO gaps(device, boot, from_seq, to_seq, at) VALUES (?,?,?,?,?)",
                                        [x[1:] + (now,) for x in gaps])
                for (dev, boot), st in touched.items():
                    self.db.execute(
                        "INSERT INTO streams(device, boot, first, hi, delivered, records, dups, lost, updated) "
                        "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(device, boot) DO UPDATE SET hi=excluded.hi, "
                        "records=records+excluded.records, dups=dups+excluded.dups, lost=lost+excluded.lost, "
                        "updated=excluded.updated",
                        (dev, boot, st["first"] if st["first"] is not None else st["hi"], st["hi"], st["delivered"],
                         st["n"], st["dups"], st["lost"], now))
                if stored and self.max_records and self._depth + len(stored) > self.max_records:
                    over = self._depth + len(stored) - self.max_records
                    self.db.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (over,))
                    self._bump("dropped_oldest", over)
                    res.dropped_oldest = over
                    self._depth -= over
                self.db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise SpoolError(f"spool {self.path}: {e}") from None
            for key, st in touched.items():
                self.streams[key] = [st["hi"], st["delivered"]]
            self._depth += len(stored)
            res.stored = len(stored)
        return res

    def _rollback(self):
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _bump(self, name: str, n: int):
        self.db.execute("INSERT INTO counters(name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value", (name, n))

    # -- forward ---------------------------------------------------------------------------------
    def pending(self, after_id: int, limit: int = 500) -> list[tuple]:
        """Rows (id, device, boot, seq, rx_time, body) with id > after_id, oldest first."""
        with self.lock:
            return self.db.execute("SELECT id, device, boot, seq, rx_time, body FROM spool WHERE id > ? "
                                   "ORDER BY id LIMIT ?", (after_id, limit)).fetchall()

    def delivered(self, rows: list[tuple]) -> None:
        """The broker acknowledged these rows (id, device, boot, seq): delete them and move the watermarks."""
        if not rows:
            return
        with self.lock:
            marks: dict[tuple, int] = {}
            for _id, dev, boot, seq in rows:
                if seq > marks.get((dev, boot), -1):
                    marks[(dev, boot)] = seq
            try:
                self.db.execute("BEGIN IMMEDIATE")
                cur = self.db.executemany("DELETE FROM spool WHERE id = ?", [(r[0],) for r in rows])
                self.db.executemany("UPDATE streams SET delivered = max(delivered, ?) WHERE device=? AND boot=?",
                                    [(seq, dev, boot) for (dev, boot), seq in marks.items()])
                self.db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise SpoolError(f"spool {self.path}: {e}") from None
            self._depth = max(0, self._depth - (cur.rowcount if cur.rowcount >= 0 else len(rows)))
            for key, seq in marks.items():
                st = self.streams.get(key)
                if st and seq > st[1]:
                    st[1] = seq

    # -- views -----------------------------------------------------------------------------------
    def depth(self) -> int:
        return self._depth

    def oldest_rx_time(self) -> float | None:
        with self.lock:
            row = self.db.execute("SELECT rx_time FROM spool ORDER BY id LIMIT 1").fetchone()
        return row[0] if row else None

    def counter(self, name: str) -> int:
        with self.lock:
            row = self.db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return row[0] if row else 0

    def stream_rows(self) -> list[dict]:
        with self.lock:
            cur = self.db.execute("SELECT device, boot, first, hi, delivered, records, dups, lost FROM streams "
                                  "ORDER BY device, boot")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def gap_rows(self) -> list[tuple]:
        with self.lock:
            return self.db.execute("SELECT device, boot, from_seq, to_seq FROM gaps ORDER BY rowid").fetchall()

    def get(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                            (key, value))

    def close(self):
        with self.lock:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
