"""Seed SLIs for `mote relay`, exported with prometheus-client.

Computed from what flows through the relay, per device:
- inference success rate and p95 latency: SenML records `label` (string value `vs`), `conf` (`v`, 0..1) and
  `lat_ms` (`v`): a record pack carrying `lat_ms` or `label` is one inference; it succeeded when it carries a
  `label` and no `err` record;
- battery: `soc` (state of charge, %) and `bv` (volts) from heartbeat packs;
- drift index: population stability index (PSI) of the `conf` histogram over a recent window against the
  histogram of the device's first `reference_s` seconds (a day by default). PSI < 0.1: stable, 0.1-0.25:
  moderate shift, > 0.25: significant;
- telemetry freshness, dropped/duplicate/corrupt counts, spool depth and relay lag.
"""

from __future__ import annotations

import collections
import json
import math
import threading
import time

BINS = 10
RECENT = 1000           # confidences in the "now" window for drift, latencies for p95


def psi(expected: list[float], actual: list[float], eps: float = 1e-4) -> float:
    """Population stability index of two histograms (counts or fractions over the same bins)."""
    se, sa = float(sum(expected)), float(sum(actual))
    if se <= 0 or sa <= 0:
        return float("nan")
    total = 0.0
    for e, a in zip(expected, actual):
        pe, pa = max(e / se, eps), max(a / sa, eps)
        total += (pa - pe) * math.log(pa / pe)
    return total


def histogram(values, bins: int = BINS) -> list[int]:
    h = [0] * bins
    for v in values:
        h[min(bins - 1, max(0, int(v * bins)))] += 1
    return h


def p95(values) -> float:
    vals = sorted(values)
    if not vals:
        return float("nan")
    return vals[min(len(vals) - 1, math.ceil(0.95 * len(vals)) - 1)]


class DeviceStats:
    def __init__(self, reference_s: float):
        self.reference_s = reference_s
        self.last_rx: float | None = None
        self.connected = False
        self.records = self.duplicates = self.lost = self.corrupt = self.published = 0
        self.resyncs = 0          # sessions reopened after a record went missing in transit (no loss)
        self.conflicts = 0        # records / links another source also claims (identity conflicts)
        self.inferences = self.inferences_ok = 0
        self.latencies: collections.deque = collections.deque(maxlen=RECENT)
        self.soc: float | None = None
        self.bv: float | None = None
        self.ref_start: float | None = None
        self.ref_hist = [0] * BINS
        self.ref_done = False
        self.recent_conf: collections.deque = collections.deque(maxlen=RECENT)
        self.rate = 0.0           # records/s, smoothed
        self._rate_n = 0
        self._rate_t = time.monotonic()

    def drift(self) -> float:
        if not self.ref_done or not self.recent_conf:
            return float("nan")
        return psi(self.ref_hist, histogram(self.recent_conf))


class Metrics:
    def __init__(self, reference_s: float = 86400.0, clock=time.time):
        self.reference_s = reference_s
        self.clock = clock
        self.lock = threading.Lock()
        self.devices: dict[str, DeviceStats] = {}
        self.spool_depth = lambda: 0
        self.spool_oldest = lambda: None
        self.spool_dropped = lambda: 0
        self.broker_up: dict[str, bool] = {}

    def dev(self, device: str) -> DeviceStats:
        d = self.devices.get(device)
        if d is None:
            d = self.devices[device] = DeviceStats(self.reference_s)
        return d

    # -- feeding ---------------------------------------------------------------------------------
    def observe(self, device: str, records: list[dict], rx_time: float):
        """One telemetry record (its SenML pack as JSON-label dicts) received at rx_time."""
        with self.lock:
            d = self.dev(device)
            d.records += 1
            d._rate_n += 1
            d.last_rx = rx_time if d.last_rx is None else max(d.last_rx, rx_time)
            vals = {}
            for r in records:
                name = r.get("n")
                if name is None:
                    continue
                vals[name] = r.get("vs", r.get("v", r.get("vb")))
            if "lat_ms" in vals or "label" in vals:
                d.inferences += 1
                if vals.get("label") is not None and "err" not in vals:
                    d.inferences_ok += 1
                if isinstance(vals.get("lat_ms"), (int, float)):
                    d.latencies.append(float(vals["lat_ms"]))
            conf = vals.get("conf")
            if isinstance(conf, (int, float)):
                if d.ref_start is None:
                    d.ref_start = rx_time
                if not d.ref_done and rx_time - d.ref_start < self.reference_s:
                    d.ref_hist[min(BINS - 1, max(0, int(conf * BINS)))] += 1
                else:
                    d.ref_done = True
                    d.recent_conf.append(float(conf))
            if isinstance(vals.get("soc"), (int, float)):
                d.soc = float(vals["soc"])
            if isinstance(vals.get("bv"), (int, float)):
                d.bv = float(vals["bv"])

    def count(self, device: str, what: str, n: int = 1):
        if n:
            with self.lock:
                d = self.dev(device)
                setattr(d, what, getattr(d, what) + n)

    def set_connected(self, device: str, up: bool):
        with self.lock:
            self.dev(device).connected = up

    def tick(self):
        """Update the smoothed record rates (call about once a second)."""
        now = time.monotonic()
        with self.lock:
            for d in self.devices.values():
                dt = now - d._rate_t
                if dt > 0:
                    d.rate = d._rate_n / dt if d.rate == 0 else 0.5 * d.rate + 0.5 * d._rate_n / dt
                d._rate_n = 0
                d._rate_t = now

    # -- persistence of the drift reference --------------------------------------------------------
    def reference_state(self) -> str:
        with self.lock:
            return json.dumps({k: {"start": d.ref_start, "hist": d.ref_hist, "done": d.ref_done}
                               for k, d in self.devices.items() if d.ref_start is not None})

    def load_reference(self, text: str | None):
        if not text:
            return
        for k, v in json.loads(text).items():
            d = self.dev(k)
            d.ref_start, d.ref_hist, d.ref_done = v["start"], v["hist"], v["done"]

    # -- views -----------------------------------------------------------------------------------
    def lag(self) -> float:
        oldest = self.spool_oldest()
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    def snapshot(self) -> dict:
        now = self.clock()
        with self.lock:
            devs = {}
            for k, d in sorted(self.devices.items()):
                devs[k] = {"connected": d.connected, "rate": round(d.rate, 1), "records": d.records,
                           "published": d.published, "duplicates": d.duplicates, "lost": d.lost,
                           "corrupt": d.corrupt, "resyncs": d.resyncs, "conflicts": d.conflicts,
                           "age_s": None if d.last_rx is None else round(now - d.last_rx, 3),
                           "inference_success": (d.inferences_ok / d.inferences) if d.inferences else None,
                           "latency_p95_ms": p95(d.latencies) if d.latencies else None,
                           "soc": d.soc, "bv": d.bv,
                           "drift_psi": None if math.isnan(d.drift()) else round(d.drift(), 4)}
        return {"devices": devs, "spool_depth": self.spool_depth(), "lag_s": round(self.lag(), 3),
                "spool_dropped": self.spool_dropped(), "brokers": dict(self.broker_up)}

    # -- prometheus ------------------------------------------------------------------------------
    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        now = self.clock()

        def fam(kind, name, doc, labels=("device",)):
            return (CounterMetricFamily if kind == "c" else GaugeMetricFamily)(name, doc, labels=list(labels))

        c = {k: fam("c", *v) for k, v in {
            "records": ("motekit_relay_records", "Records committed to the spool"),
            "published": ("motekit_relay_published", "Records acknowledged by the broker (PUBACK)"),
            "duplicates": ("motekit_relay_duplicates", "Records received again (same device, boot, seq) and not forwarded"),
            "lost": ("motekit_relay_dropped", "Records that never reached the gateway (sequence gaps)"),
            "corrupt": ("motekit_relay_corrupt_frames", "Frames dropped by the link (CRC, COBS, malformed payload)"),
            "resyncs": ("motekit_relay_resyncs", "Sessions reopened after records went missing in transit (resent by the board)"),
            "conflicts": ("motekit_relay_conflicts", "Identity conflicts: a (device, boot, seq) with other content, a record inside a gap another source made, or a device id on two sources at once"),
            "inferences": ("motekit_device_inferences", "Inference results received"),
            "inferences_ok": ("motekit_device_inferences_ok", "Successful inference results received"),
        }.items()}
        g = {k: fam("g", *v) for k, v in {
            "age": ("motekit_device_telemetry_age_seconds", "Seconds since the last telemetry record (freshness)"),
            "connected": ("motekit_device_connected", "1 while the relay holds a link to the device"),
            "rate": ("motekit_device_records_per_second", "Telemetry rate, smoothed"),
            "success": ("motekit_device_inference_success_ratio", "Successful / all inferences"),
            "p95": ("motekit_device_inference_latency_p95_ms", f"p95 of the last {RECENT} inference latencies"),
            "soc": ("motekit_device_battery_soc_percent", "Battery state of charge from the last heartbeat"),
            "bv": ("motekit_device_battery_volts", "Battery voltage from the last heartbeat"),
            "drift": ("motekit_device_drift_psi", "PSI of recent model confidences vs the first day's"),
        }.items()}
        with self.lock:
            for k, d in self.devices.items():
                for attr, m in c.items():
                    m.add_metric([k], getattr(d, attr))
                g["connected"].add_metric([k], 1 if d.connected else 0)
                g["rate"].add_metric([k], d.rate)
                if d.last_rx is not None:
                    g["age"].add_metric([k], max(0.0, now - d.last_rx))
                if d.inferences:
                    g["success"].add_metric([k], d.inferences_ok / d.inferences)
                if d.latencies:
                    g["p95"].add_metric([k], p95(d.latencies))
                if d.soc is not None:
                    g["soc"].add_metric([k], d.soc)
                if d.bv is not None:
                    g["bv"].add_metric([k], d.bv)
                dr = d.drift()
                if not math.isnan(dr):
                    g["drift"].add_metric([k], dr)
        yield from c.values()
        yield from g.values()
        sd = GaugeMetricFamily("motekit_relay_spool_depth", "Records in the spool not yet acknowledged by the broker")
        sd.add_metric([], self.spool_depth())
        yield sd
        lag = GaugeMetricFamily("motekit_relay_lag_seconds", "Age of the oldest record still in the spool")
        lag.add_metric([], self.lag())
        yield lag
        dr = CounterMetricFamily("motekit_relay_spool_dropped", "Records evicted from a full spool (drop-oldest)")
        dr.add_metric([], self.spool_dropped())
        yield dr
        bu = GaugeMetricFamily("motekit_relay_broker_connected", "1 while connected to the broker", labels=["broker"])
        for k, v in self.broker_up.items():
            bu.add_metric([k], 1 if v else 0)
        yield bu

    def registry(self):
        from prometheus_client import CollectorRegistry

        reg = CollectorRegistry(auto_describe=False)
        reg.register(self)
        return reg
