"""Decision -> telemetry (mote.report): which hops become `acc` records, under micropython and in the app."""

import json

from mpy import run_mpy
from test_app_wiring import RESEND, decode, run_device, tel

REPORTER = """
import json, micropython
from mote.report import Reporter, KEEPALIVE_MS
r = Reporter()
out = {}
# "window": every hop
out["window"] = [r.hop(t * 500, m, None) for t, m in enumerate([1, 1, 0, 0])]
r.set_mode("change")
hops = [(0, 1, "wave"), (500, 1, "wave"), (1000, 1, "wave"), (1500, 1, "tap"), (2000, 0, "tap"),
        (2500, 0, "tap"), (3000, 0, None), (3500, 0, None)]
sent = []
for t, m, lab in hops:
    if r.hop(t, m, lab):
        sent.append([t, r.take_held()])
out["change"] = sent
out["held_end"] = r.take_held()
# a steady decision is still reported every KEEPALIVE_MS, across the 2**30 ms tick wrap
r.reset()
t0 = (1 << 30) - 20000
k = [t for t in range(0, 150000, 500) if r.hop((t0 + t) & 0x3FFFFFFF, 1, "wave")]
out["keepalive"] = k
# the per-hop decision allocates nothing
r.reset()
micropython.heap_lock()
try:
    for t in range(2000):
        r.hop(t * 500, t % 7 == 0, "wave")
finally:
    micropython.heap_unlock()
out["KEEPALIVE_MS"] = KEEPALIVE_MS
print(json.dumps(out))
"""


def test_reporter_window_change_keepalive_and_no_allocation():
    out = json.loads(run_mpy(REPORTER).stdout.decode().splitlines()[-1])
    assert out["window"] == [True] * 4
    # reported: the first hop, the label change, the stop, the label going away; held = hops folded before each
    assert out["change"] == [[0, 0], [1500, 2], [2000, 0], [3000, 1]]
    assert out["held_end"] == 1
    assert out["keepalive"] == [0, 60000, 120000] and out["KEEPALIVE_MS"] == 60000


def test_battery_band_reports_changes_with_held_counts(tmp_path):
    # on battery (the `normal` band: report "change") with a host listening: a record only when the hop's
    # moving flag changes; `mv` and `held` let the host rebuild every hop
    body = """
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
fill_window()
a._power_tick(compat.ticks_ms())
res = {"report": a.power.policy.report(), "change": a.reporter.change}
frames_out()
for m in [1, 1, 1, 1, 0, 0, 1, 1, 1]:
    a.hop_moving = bool(m)
    a.telemetry()
res["out"] = frames_out()
board.power.on_usb = True                   # USB power: the usb row reports every hop again
a._power_tick(compat.ticks_add(a.power.next_tick, 1))
res["usb_report"] = a.power.policy.report()
frames_out()
for m in [1, 1, 1]:
    a.hop_moving = bool(m)
    a.telemetry()
res["usb_out"] = frames_out()
print(json.dumps(res))
""" % RESEND
    res = json.loads(run_device(body, tmp_path, windows=False).splitlines()[-1])
    assert res["report"] == "change" and res["change"]
    acc = [r[4] for r in tel(decode(res["out"])) if r[3] == "acc"]
    fields = [{e[0]: e.get(4, e.get(2)) for e in pack if 0 in e} for pack in acc]
    assert [(f["mv"], f["held"]) for f in fields] == [(True, 0), (False, 3), (True, 1)]
    assert res["usb_report"] == "window"
    usb = [r[4] for r in tel(decode(res["usb_out"])) if r[3] == "acc"]
    assert len(usb) == 3 and all("mv" not in {e.get(0) for e in p} for p in usb)
