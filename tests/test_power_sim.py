"""`mote power simulate` end to end on a short synthetic trace (the firmware's policy under micropython)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gen_trace  # noqa: E402

from motekit.power.simulate import read_trace, score  # noqa: E402


def test_simulate_json_and_recall_recomputes(tmp_path):
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.5, seed=3, quiet_s=(30, 120)))
    png = tmp_path / "p.png"
    out = subprocess.run([sys.executable, "-m", "motekit.cli", "power", "simulate", "--board", "pico_w",
                          "--trace", str(trace), "--plot", str(png), "--json"],
                         capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.stdout)
    for k in ("life_days", "recall", "baseline_life_days", "baseline_recall", "detections", "energy_by_state"):
        assert k in r
    t = read_trace(trace)
    assert r["events"] == len(t.events()) >= 5
    recall, precision, _, _ = score(t, r["detections"])
    assert abs(recall - r["recall"]) < 1e-9 and r["recall"] >= 0.95
    assert r["life_days"] > 3 * r["baseline_life_days"] and r["baseline_recall"] >= r["recall"]
    assert abs(sum(r["energy_by_state"].values()) - 1) < 0.01
    assert png.stat().st_size > 10000


def test_trace_reader_names_missing_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("t,x,y,z\n0,0,0,1\n0.02,0,0,1\n")
    out = subprocess.run([sys.executable, "-m", "motekit.cli", "power", "simulate", "--trace", str(p)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "event" in out.stderr and "Traceback" not in out.stderr
