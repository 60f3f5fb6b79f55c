"""`mote demo`, the README's first command, end to end: every stage of the tour must work."""

import subprocess
import sys
from pathlib import Path

MOTE = str(Path(sys.executable).with_name("mote"))


def test_demo_runs_every_stage():
    p = subprocess.run([MOTE, "demo", "--count", "3"], capture_output=True, text=True, timeout=400)
    out = p.stdout
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in out + p.stderr
    assert '"proto"' in out or "proto" in out                      # hello
    assert "active: gesture 1.0 (seq 1, slot a, confirmed" in out   # signed model flashed and confirmed
    classified = [line for line in out.splitlines() if "label=" in line and "conf=" in line]
    assert len(classified) >= 3                                     # classifying in telemetry
    assert "life ratio" in out and "recall 1.000" in out            # the power policy simulated with that model
    relayed = [line for line in out.splitlines() if "/telemetry  boot" in line]
    assert len(relayed) == 3 and all("label=" in line for line in relayed)   # relayed over MQTT
