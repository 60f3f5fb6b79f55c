"""The offline spool under MicroPython: order, ack release, drop-oldest accounting, and persistence
across a simulated reset (a fresh interpreter process over the same flash directory)."""

import json

from mpy import run_mpy

PRE = """
import json, os
from mote.spool import Spool
ROOT = %r
def mk():
    return Spool(ROOT, seg_bytes=200, max_segs=3)
"""


def run(tmp_path, body):
    out = run_mpy(PRE % str(tmp_path / "spool") + body)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def test_order_ack_and_survives_reset(tmp_path):
    r = run(tmp_path, """
s = mk()
for i in range(1, 11):
    s.append(3, i, b"rec%d" % i)
first = s.unsent(4)
print(json.dumps({"depth": s.depth, "first": [x[1] for x in first], "rel": s.ack(3, 4), "d2": s.depth}))
""")
    assert r == {"depth": 10, "first": [1, 2, 3, 4], "rel": 4, "d2": 6}
    # "reset": a new process opens the same flash; unacked records come back in order
    r = run(tmp_path, """
s = mk()
got = []
while True:
    b = s.unsent(3)
    if not b: break
    got.extend(b)
s.rewind()
again = s.unsent(2)
print(json.dumps({"depth": s.depth, "seqs": [x[1] for x in got], "payload": got[0][2].decode(),
                  "again": [x[1] for x in again], "dropped": s.dropped}))
""")
    assert r == {"depth": 6, "seqs": [5, 6, 7, 8, 9, 10], "payload": "rec5", "again": [5, 6], "dropped": 0}
    r = run(tmp_path, """
s = mk()
n = s.ack(3, 10)
s.append(4, 1, b"next boot")
print(json.dumps({"rel": n, "depth": s.depth, "u": [[x[0], x[1]] for x in s.unsent(5)]}))
""")
    assert r == {"rel": 6, "depth": 1, "u": [[4, 1]]}


def test_overflow_drops_oldest_and_counts(tmp_path):
    r = run(tmp_path, """
s = mk()
for i in range(1, 201):
    s.append(1, i, b"x" * 20)           # 28 bytes a record, 7 a segment, 3 segments
u = s.unsent(100)
print(json.dumps({"depth": s.depth, "dropped": s.dropped, "first": u[0][1], "last": u[-1][1], "n": len(u),
                  "files": len([n for n in os.listdir(ROOT) if n.endswith(".seg")])}))
""")
    assert r["depth"] == r["n"] and r["first"] + r["n"] - 1 == 200 and r["last"] == 200
    assert r["dropped"] + r["depth"] == 200 and r["files"] <= 3 and r["n"] >= 14
    dropped = r["dropped"]
    r = run(tmp_path, "s = mk(); print(json.dumps({'dropped': s.dropped, 'depth': s.depth}))")
    assert r["dropped"] == dropped and r["depth"] + dropped == 200     # the counter survives reset too


def test_torn_tail_record_is_ignored(tmp_path):
    r = run(tmp_path, """
s = mk()
s.append(1, 1, b"good")
with open(ROOT + "/0.seg", "ab") as f:
    f.write(b"\\x40\\x00\\x01\\x00\\x02")        # power lost in the middle of a header
s2 = mk()
print(json.dumps({"depth": s2.depth, "u": [x[1] for x in s2.unsent(5)]}))
""")
    assert r == {"depth": 1, "u": [1]}
    r = run(tmp_path, """
s = mk()
s.append(1, 2, b"after reset")
print(json.dumps({"u": [x[1] for x in s.unsent(5)]}))
""")
    assert r == {"u": [1, 2]}
