"""The file:// sink (motekit.relay.sinks): every record, status and event as one JSON line appended to a file.

For a gateway without a broker, to keep an archive next to one, or to see what the relay would publish:
`mote relay --from sim --to file://telemetry.jsonl`. A record is confirmed (and so leaves the spool) once its
line is written and flushed; with ?fsync=1 once it is on the disk. A failed write (a full disk) confirms
nothing; the sink says so once and reopens the file every RETRY_S, the records waiting in the spool. Lines:

    {"kind": "telemetry", "device": "D", "record": {...the record as published on PREFIX/D/telemetry...}}
    {"kind": "status", "device": "D", "state": "online", ...}
    {"kind": "event", "device": "D", "event": "gap", ...}
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError
from .sinks import Sink, SinkHost


@dataclass
class FileSpec:
    url: str
    path: str
    fsync: bool = False

    @property
    def name(self) -> str:
        return f"file:{self.path}"


class FileSink(Sink):
    def __init__(self, spec: FileSpec, gateway: str, host: SinkHost, index: int = 0):
        self.spec = spec
        self.name = spec.name
        self.gateway = gateway
        self.host = host
        self.f = None
        self.error = "not started"
        self.failed_at = None
        self.done: list[tuple] = []
        self.lock = threading.Lock()                 # status/events come from source threads, records from the core

    @classmethod
    def parse(cls, url: str, **extra) -> FileSpec:
        """file://PATH (relative to the working directory) or file:///ABSOLUTE/PATH, ?fsync=1 to sync each write."""
        u = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(u.netloc + u.path)
        if not path:
            raise ConfigError(f"bad file URL {url!r}: give file://PATH, e.g. file://telemetry.jsonl")
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query).items()}
        given = {k: v for k, v in extra.items() if v is not None}
        bad = (set(q) | set(given)) - {"fsync"}
        if bad:
            raise ConfigError(f"bad file URL {url!r}: unknown option {sorted(bad)[0]!r} (a file sink takes ?fsync=1)")
        fsync = str(given.get("fsync", q.get("fsync", "0"))).lower() in ("1", "true", "yes")
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"bad file URL {url!r}: {path} is a directory; name a file in it")
        if not p.parent.is_dir():
            raise ConfigError(f"bad file URL {url!r}: directory {p.parent} does not exist")
        return FileSpec(url=url, path=path, fsync=fsync)

    RETRY_S = 5.0                                    # after a write failed (disk full...): try again this often

    def start(self):
        self.failed_at = None
        try:
            self.f = open(self.spec.path, "a+b")        # appends only; readable for the check below
            end = self.f.seek(0, os.SEEK_END)
            if end and os.pread(self.f.fileno(), 1, end - 1) != b"\n":
                self.f.write(b"\n")                  # a line cut short by an earlier failure stays one bad line
                self.f.flush()
            self.error = ""
            self.host.sink_state(self.name, True)
        except OSError as e:
            self._failed(e)

    def _failed(self, e: OSError):
        why = f"cannot write {self.spec.path}: {e.strerror or e}"
        self.failed_at = time.monotonic()
        if why != self.error:                        # said once, not on every retry
            self.host.sink_state(self.name, False)
            self.host.event(None, "sink", sink=self.name, state="unwritable", reason=why)
        self.error = why

    def state(self) -> str:
        return "connected" if self.f and not self.error else self.error

    def ready(self, timeout: float) -> int:
        if self.error:                               # nothing is confirmed meanwhile: the spool keeps every record
            if self.failed_at is not None and time.monotonic() - self.failed_at >= self.RETRY_S:
                with self.lock:
                    if self.f is not None:
                        try:
                            self.f.close()
                        except OSError:
                            pass
                        self.f = None
                    self.start()
            if self.error:
                time.sleep(timeout)
                return 0
        return 500 if self.f is not None else 0

    def _write(self, data: bytes) -> bool:
        with self.lock:
            if self.f is None or self.error:
                return False
            try:
                self.f.write(data)
                self.f.flush()
                if self.spec.fsync:
                    os.fsync(self.f.fileno())
                return True
            except OSError as e:                          # disk full, file system gone: say it, keep spooling
                self._failed(e)
                return False

    def publish(self, rows: list[tuple]):
        head = b'{"kind": "telemetry", "device": '
        data = b"".join(head + json.dumps(dev).encode() + b', "record": ' + body + b"}\n"
                        for _rid, dev, _boot, _seq, _rx, body in rows)
        if self._write(data):
            self.done.extend(r[:4] for r in rows)

    def confirmed(self) -> list[tuple]:
        done, self.done = self.done, []
        return done

    def _line(self, kind: str, device: str, fields: dict):
        self._write((json.dumps({"kind": kind, "device": device, **fields}, default=str) + "\n").encode())

    def status(self, device: str, status: dict):
        self._line("status", device, dict(status, gateway=self.gateway, at=time.time()))

    def event(self, device: str, ev: dict):
        self._line("event", device, ev)

    def close(self, timeout: float = 3.0):
        with self.lock:
            if self.f is not None:
                try:
                    self.f.close()
                except OSError:
                    pass
                self.f = None
