#!/usr/bin/env python3
"""Synthetic labelled accelerometer trace for `mote power simulate`: rare activity bursts in long quiet periods.

CSV columns: t (s), x, y, z (acceleration in g), event (empty while nothing happens, else the activity's
name). The signal comes from the firmware's own synthetic sensor (firmware/mote/motion.py: the virtual
board's accelerometer), so shake / wave / updown look exactly like what `mote sim` produces:

- quiet stretches of `--quiet-min`..`--quiet-max` seconds (default 1-8 min): the sensor at rest with its
  noise, a slowly changing tilt, and now and then a short bump (a knock on the table, 0.1-0.3 s, labelled
  quiet: it is not an activity and tests the detector's precision);
- activity bursts of `--burst-min`..`--burst-max` seconds (default 4-20 s) of shake, wave or updown.

    python tools/gen_trace.py --hours 4 --seed 1 -o trace.csv

Deterministic for a seed. `generate()` returns the rows for programmatic use.
"""

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _motion():
    sys.path.insert(0, str(ROOT / "firmware"))
    try:
        from mote import motion
    finally:
        sys.path.pop(0)
    return motion


def generate(hours=4.0, seed=1, hz=50, quiet_s=(60, 480), burst_s=(4, 20), bumps_per_hour=6):
    """Yield (t, x, y, z, event) rows: x/y/z in g."""
    motion = _motion()
    rng = random.Random(seed)
    one_g = motion.ONE_G
    buf = [0, 0, 0]
    n_total = int(hours * 3600 * hz)
    n = 0
    quiet = motion.Motion(seed, hz, activity=motion.IDLE)
    tilt_x, tilt_y = 0.0, 0.0
    while n < n_total:
        # quiet stretch
        q = int(rng.uniform(*quiet_s) * hz)
        nb = max(0, int(rng.gauss(bumps_per_hour * q / hz / 3600, 0.5))) if bumps_per_hour > 0 else 0
        bumps = {int(rng.uniform(0, q)) for _ in range(nb)}
        tx, ty = rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)
        bump_left = 0
        for k in range(q):
            if n >= n_total:
                return
            quiet.fill(buf, 0)
            tilt_x += (tx - tilt_x) / (20 * hz)
            tilt_y += (ty - tilt_y) / (20 * hz)
            x, y, z = buf[0] / one_g + tilt_x, buf[1] / one_g + tilt_y, buf[2] / one_g
            if k in bumps:
                bump_left = int(rng.uniform(0.1, 0.3) * hz)
            if bump_left:
                bump_left -= 1
                z += rng.uniform(-0.4, 0.4)
                x += rng.uniform(-0.2, 0.2)
            yield (n / hz, x, y, z, "")
            n += 1
        # burst
        act = rng.choice((1, 2, 3))
        m = motion.Motion(rng.randrange(1, 10 ** 6), hz, activity=act)
        b = int(rng.uniform(*burst_s) * hz)
        for _ in range(b):
            if n >= n_total:
                return
            m.fill(buf, 0)
            yield (n / hz, buf[0] / one_g + tilt_x, buf[1] / one_g + tilt_y, buf[2] / one_g, motion.ACTIVITIES[act])
            n += 1


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("t,x,y,z,event\n")
        for t, x, y, z, ev in rows:
            f.write(f"{t:.3f},{x:.4f},{y:.4f},{z:.4f},{ev}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hz", type=int, default=50)
    ap.add_argument("--quiet-min", type=float, default=60)
    ap.add_argument("--quiet-max", type=float, default=480)
    ap.add_argument("--burst-min", type=float, default=4)
    ap.add_argument("--burst-max", type=float, default=20)
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args(argv)
    rows = generate(a.hours, a.seed, a.hz, (a.quiet_min, a.quiet_max), (a.burst_min, a.burst_max))
    if a.output == "-":
        sys.stdout.write("t,x,y,z,event\n")
        for t, x, y, z, ev in rows:
            sys.stdout.write(f"{t:.3f},{x:.4f},{y:.4f},{z:.4f},{ev}\n")
    else:
        write_csv(a.output, rows)


if __name__ == "__main__":
    main()
