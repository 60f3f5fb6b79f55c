"""The relay: sources -> spool -> sinks (motekit.relay.sinks: MQTT, a file, ...), with metrics, events and a summary."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

from .config import RelayConfig
from .metrics import Metrics
from .spool import IngestResult, Spool


class Relay:
    def __init__(self, cfg: RelayConfig, log=None):
        from .sinks import open_sink

        self.cfg = cfg
        self.gateway = cfg.gateway or socket.gethostname().split(".")[0] or "gateway"
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.log = log or (lambda obj: print(json.dumps(obj, default=str), file=sys.stderr, flush=True))
        self.spool = Spool(cfg.spool, max_records=cfg.spool_max, policy=cfg.spool_policy, fsync=cfg.fsync)
        self.metrics = Metrics(reference_s=cfg.reference_s)
        self.metrics.spool_depth = self.spool.depth
        self.metrics.spool_oldest = self.spool.oldest_rx_time
        self.metrics.spool_dropped = lambda: self.spool.counter("dropped_oldest")
        self.metrics.load_reference(self.spool.get("drift_reference"))
        self.sinks = [open_sink(b, self.gateway, self, index=i) for i, b in enumerate(cfg.brokers)]
        self._feeders: list[threading.Thread] = []
        self.sources: list = []
        self._acks: dict[int, int] = {}          # spool id -> sinks that acknowledged it (with >1 sink)
        self._ack_lock = threading.Lock()
        self.started = time.time()
        from .downlink import forwarded
        self.allowed = forwarded(cfg.allow_cmd)     # what PREFIX/DEVICE/cmd may ask (motekit.relay.downlink)
        self.state_dir = Path(cfg.spool).resolve().parent

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self):
        from .sources import AutoSerial, BleSource, SerialSource, SimSource

        for i, s in enumerate(self.sinks):
            s.start()
            t = threading.Thread(target=self._feed, args=(s,), name=f"relay-sink-{i}", daemon=True)
            t.start()
            self._feeders.append(t)
        for spec in self.cfg.sources:
            if spec.kind == "serial":
                self.add_source(SerialSource(self, spec.arg))
            elif spec.kind == "sim":
                seed = int(spec.arg)
                self.add_source(SimSource(self, seed, self.state_dir / f"motekit-relay-sim-{seed}"))
            elif spec.kind == "ble":
                self.add_source(BleSource(self, spec.arg))
            elif spec.kind == "auto":
                AutoSerial(self, pattern=spec.arg or None).start()
        self._ticker = threading.Thread(target=self._tick, name="relay-tick", daemon=True)
        self._ticker.start()

    def add_source(self, src):
        self.sources.append(src)
        src.start()

    def stop(self):
        self.stopping.set()
        for s in self.sources:
            s.join(timeout=3)
        for t in self._feeders:
            t.join(timeout=3)
        for s in self.sinks:
            self._confirmed(s)
            s.close()
            self._confirmed(s)
        self.spool.put("drift_reference", self.metrics.reference_state())
        self.event(None, "stopped", spool_depth=self.spool.depth())
        self.spool.close()

    def _tick(self):
        n = 0
        while not self.stopping.wait(1.0):
            self.metrics.tick()
            n += 1
            if n % 60 == 0:
                self.spool.put("drift_reference", self.metrics.reference_state())

    # -- to sinks --------------------------------------------------------------------------------
    def _feed(self, sink):
        """Hand one sink the spool's rows in order, as fast as it says it can take them."""
        cursor = 0                                   # the last spool id this sink was given
        while not self.stopping.is_set():
            self._confirmed(sink)
            room = sink.ready(0.1)
            if room <= 0:
                continue
            rows = self.spool.pending(cursor, limit=min(room, 500))
            if not rows:
                self.wake.wait(0.02)
                self.wake.clear()
                continue
            sink.publish(rows)
            cursor = rows[-1][0]

    def _confirmed(self, sink):
        rows = sink.confirmed()
        if rows:
            self.acked(sink, rows)

    # -- from sources ----------------------------------------------------------------------------
    def ingest(self, src, recs: list[dict]) -> IngestResult:
        res = self.spool.ingest(src.device, recs)
        if res.blocked:
            return res
        dev = src.device
        m = self.metrics
        for r in recs:
            m.observe(dev, r["records"], r["rx_time"])
        m.count(dev, "duplicates", res.duplicates)
        m.count(dev, "lost", res.lost)
        if res.conflicts:
            # another source claims this device's (boot, seq): kept aside, not acked, said loudly
            m.count(dev, "conflicts", len(res.conflicts))
            for boot, seq, why in res.conflicts[:10]:
                self.event(dev, "conflict", source=src.label, boot=boot, seq=seq, reason=why)
            if len(res.conflicts) > 10:
                self.event(dev, "conflict", source=src.label, more=len(res.conflicts) - 10)
        if res.lost:
            self.event(dev, "gap", lost=res.lost)
        if res.stored:
            self.wake.set()
        return res

    def device_online(self, src, info: dict):
        others = [s.label for s in self.sources if s is not src and s.connected and s.device == src.device]
        if others:
            # one device id on two links at once: one of them is not that board (or a cloned id)
            self.metrics.count(src.device, "conflicts", 1)
            self.event(src.device, "conflict", source=src.label, also_on=others,
                       reason="device id seen on two sources at once")
        self.metrics.set_connected(src.device, True)
        self.event(src.device, "online", source=src.label, board=info.get("board"), fw=info.get("fw"),
                   boot=info.get("boot"))
        for s in self.sinks:
            s.status(src.device, {"state": "online", "source": src.label, "board": info.get("board"),
                                         "fw": info.get("fw"), "boot": info.get("boot"), "model": info.get("model")})

    def device_offline(self, src, reason: str):
        self.metrics.set_connected(src.device, False)
        self.event(src.device, "offline", source=src.label, reason=reason)
        for s in self.sinks:
            s.status(src.device, {"state": "offline", "source": src.label, "reason": reason})

    def event(self, device, kind: str, **fields):
        ev = {"t": round(time.time(), 3), "event": kind, **({"device": device} if device else {}), **fields}
        self.log(ev)
        if device:
            for s in self.sinks:
                s.event(device, ev)

    # -- from sinks (motekit.relay.sinks.SinkHost) ----------------------------------------------------
    def sink_state(self, name: str, up: bool):
        self.metrics.broker_up[name] = up

    def acked(self, sink, rows: list[tuple]):
        """A sink's upstream confirmed these rows; delete those that every sink has."""
        if len(self.sinks) > 1:
            done = []
            with self._ack_lock:
                for row in rows:
                    n = self._acks.get(row[0], 0) + 1
                    if n >= len(self.sinks):
                        self._acks.pop(row[0], None)
                        done.append(row)
                    else:
                        self._acks[row[0]] = n
            rows = done
        self.spool.delivered(rows)
        for _id, dev, _boot, _seq in rows:
            self.metrics.dev(dev).published += 1

    def command(self, device: str, req: dict, reply):
        from .downlink import CommandError, check
        try:
            req = check(req, self.allowed)              # the one place a downlink command is let through
        except CommandError as e:
            reply({"id": req.get("id") if isinstance(req.get("id"), (int, str)) else None, "ok": False,
                   "error": str(e)})
            return
        for src in self.sources:
            if src.device == device and src.connected:
                src.commands.put((req, reply))
                return
        reply({"id": req.get("id"), "ok": False, "error": f"device {device} is not connected to gateway {self.gateway}"})

    # -- summary ---------------------------------------------------------------------------------
    def summary(self) -> dict:
        snap = self.metrics.snapshot()
        snap["gateway"] = self.gateway
        snap["brokers"] = {s.name: s.state() for s in self.sinks}
        snap["sources"] = {s.label: (s.device if s.connected else (s.last_error or "connecting")) for s in self.sources}
        return snap
