#!/usr/bin/env python3
"""Synthetic labelled accelerometer trace for `mote power simulate`: rare activity bursts in long quiet periods.

CSV columns: t (s), x, y, z (acceleration in g), event (empty while nothing happens, else the activity's
name). The signal comes from the firmware's own synthetic sensor (firmware/mote/motion.py: the virtual
board's accelerometer), so shake / wave / updown look exactly like what `mote sim` produces:

- quiet stretches of `--quiet-min`..`--quiet-max` seconds (default 1-8 min): the sensor at rest with its
  noise, a slowly changing tilt, and now and then a short bump (a knock on the table, 0.1-0.3 s, labelled
  quiet: it is not an activity and tests the detector's precision);
- activity bursts of `--burst-min`..`--burst-max` seconds (default 4-20 s) of shake, wave or updown.

    python -m motekit.power.gen_trace --hours 4 --seed 1 -o trace.csv

Real traces (`--real still|busy|mixed`): built from the REAL M5StickC PLUS2 recordings in
../shared/vectors/accel/exercises_m5stickc.csv (100 Hz, +-2 g; read in place, never copied into the project;
resampled to 50 Hz): exercise recordings (squat, lunge, jumpingjack: the events) at random times (`--seed`)
between `--quiet-min`..`--quiet-max` s stretches tiled from the recordings labelled `other` (unlabelled in the
trace: a wearer moving around, not exercising):
- `still`: only the stillest `other` recordings (largest per-axis standard deviation < 0.08 g);
- `busy`:  any `other` recording (most have 0.25-0.47 g of motion);
- `mixed`: each tile is a still recording with probability 0.8, a moving one with 0.2.
`--recordings test` (default) uses only the held-out half of the recordings (`gesture_data.exercise_split`:
every other recording of each class, by name), the half the exercise model (`python -m motekit.model.demo
--exercises`) was NOT trained on; `all` uses every recording.

    python -m motekit.power.gen_trace --real busy --seed 3 --hours 4 -o /tmp/busy.csv

Deterministic for a seed. `generate()` / `real()` return the rows for programmatic use.
"""

import argparse
import random
import sys

from .. import paths


def _motion():
    return paths.firmware_module("mote.motion")


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


STILL_G = 0.08          # `still`: an `other` recording whose largest per-axis std is below this (g)
REAL_KINDS = ("still", "busy", "mixed")


def _exercises(path=None):
    from ..model import gesture_data
    return gesture_data


def real(kind, hours=4.0, seed=1, quiet_s=(60, 480), recordings="test", path=None):
    """Yield (t, x, y, z, event) rows (g, 50 Hz) from the real exercise recordings; see the module doc.
    Raises FileNotFoundError (one line) when the recordings are not there."""
    if kind not in REAL_KINDS:
        raise ValueError("--real takes still, busy or mixed, not %r" % (kind,))
    gd = _exercises()
    recs = gd.exercise_recordings(path)               # {name: (activity, [(x, y, z) g at 50 Hz])}
    if recordings != "all":
        recs = {k: v for k, v in recs.items() if gd.exercise_split(k, recs) == recordings}
    other = [v[1] for k, v in sorted(recs.items()) if v[0] == "other"]
    still = [r for r in other if gd.max_axis_std(r) < STILL_G]
    moving = [r for r in other if gd.max_axis_std(r) >= STILL_G]
    acts = [(v[0], v[1]) for k, v in sorted(recs.items()) if v[0] != "other"]
    if not acts or not still or (kind != "still" and not moving):
        raise ValueError("the %s recordings lack exercises or still/moving `other` recordings" % recordings)
    rng = random.Random(seed)
    hz = 50
    n_total = int(hours * 3600 * hz)
    n = 0
    while n < n_total:
        q = int(rng.uniform(*quiet_s) * hz)
        k = 0
        while k < q and n < n_total:
            if kind == "still":
                rec = rng.choice(still)
            elif kind == "busy":
                rec = rng.choice(other)
            else:
                rec = rng.choice(still if rng.random() < 0.8 else moving)
            for x, y, z in rec:
                if k >= q or n >= n_total:
                    break
                yield (n / hz, x, y, z, "")
                n += 1
                k += 1
        lab, rec = rng.choice(acts)
        for x, y, z in rec:
            if n >= n_total:
                return
            yield (n / hz, x, y, z, lab)
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
    ap.add_argument("--real", choices=REAL_KINDS, help="build the trace from the real exercise recordings")
    ap.add_argument("--recordings", choices=("test", "train", "all"), default="test",
                    help="--real: which half of the recordings (test: the one the exercise model never saw)")
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args(argv)
    if a.real:
        try:
            rows = list(real(a.real, a.hours, a.seed, (a.quiet_min, a.quiet_max), a.recordings))
        except (OSError, ValueError) as e:
            sys.exit("gen_trace: %s" % e)
    else:
        rows = generate(a.hours, a.seed, a.hz, (a.quiet_min, a.quiet_max), (a.burst_min, a.burst_max))
    if a.output == "-":
        sys.stdout.write("t,x,y,z,event\n")
        for t, x, y, z, ev in rows:
            sys.stdout.write(f"{t:.3f},{x:.4f},{y:.4f},{z:.4f},{ev}\n")
    else:
        write_csv(a.output, rows)


if __name__ == "__main__":
    main()
