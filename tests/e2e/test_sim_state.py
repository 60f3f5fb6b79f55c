"""Virtual boards do not collide: one board per state directory (a second is refused in one line naming the
holder), and a relay's own virtual board never takes the device id of a `mote sim` with the same seed."""

import json
import signal
import subprocess
import sys
from pathlib import Path

from motekit.sim.supervisor import VirtualBoard, sim_uid

MOTE = str(Path(sys.executable).with_name("mote"))


def _start(state):
    proc = subprocess.Popen([MOTE, "sim", "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, proc.stdout.readline().strip()


def test_a_second_sim_on_the_same_state_is_refused(tmp_path):
    state = tmp_path / "board"
    first, port = _start(state)
    try:
        assert port.startswith("/dev/")
        p = subprocess.run([MOTE, "sim", "--state", str(state)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and p.stdout == ""
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        assert f"the board state {state} is in use by mote sim (pid {first.pid}, port {port})" in lines[0]
        assert "--state DIR" in lines[0] and "--seed N" in lines[0]
        # the same seed with its own state runs beside it
        other, port2 = _start(tmp_path / "other")
        assert port2.startswith("/dev/") and port2 != port
        other.send_signal(signal.SIGTERM)
        other.wait(timeout=10)
    finally:
        first.kill()                # even on kill -9 the lock goes with its holder
        first.wait(timeout=10)
    again, port3 = _start(state)
    try:
        assert port3.startswith("/dev/"), again.stderr.read()
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=10)


def test_relay_sim_and_mote_sim_have_distinct_ids(tmp_path):
    ids = []
    for kind in ("sim", "relay"):
        vb = VirtualBoard(seed=1, state_dir=tmp_path / kind, kind=kind)
        vb.install()
        ids.append(json.loads((vb.flash / "sim.json").read_text())["uid"])
    assert ids == [sim_uid(1), sim_uid(1, "relay")] and ids[0] != ids[1]
