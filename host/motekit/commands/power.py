"""`mote power ...`: the energy simulator."""

import json

import click


@click.group()
def power():
    """Battery life: run the firmware's power policy over a sensor trace."""


@power.command()
@click.option("--board", "-b", default="pico_w", show_default=True, help="Board name (e.g. pico_w, sim; see boards/) or a board file (.json).")
@click.option("--trace", type=click.Path(exists=True, dir_okay=False),
              help="Labelled CSV trace (t, x, y, z in g, event). Default: a synthetic one (python -m motekit.power.gen_trace).")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False),
              help="JSON policy override (keys of mote.policy.DEFAULT).")
@click.option("--capacity-mah", type=float, help="Battery capacity (default: the board file's).")
@click.option("--hours", type=float, default=4.0, show_default=True, help="Length of the default synthetic trace.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the default synthetic trace.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG (SoC and sampling rate, events).")
@click.option("--no-baseline", is_flag=True, help="Skip the fixed-rate baseline runs.")
@click.option("--no-imu-wake", is_flag=True,
              help="Sample in quiet (idle_hz, software detector) even if the board's IMU can wake the MCU (INT1).")
@click.option("--model", "-m", type=click.Path(exists=True, dir_okay=False),
              help="The device's classifier (.mtm): its labels decide what a \"change\" band reports. "
                   "Default: the demo gesture model (built with numpy).")
@click.option("--no-model", is_flag=True, help="No classifier on the device (reports follow the detector only).")
@click.option("--real", type=click.Choice(["still", "busy", "mixed"]),
              help="Trace built from the real exercise recordings in ../shared (motekit.power.gen_trace --real, bursts "
                   "placed by --seed); the device then runs the exercise model (unless --model / --no-model).")
@click.option("--no-screen", is_flag=True, help="What-if: no screening (every motion is an event, as before).")
@click.option("--no-fifo", is_flag=True, help="What-if: no IMU FIFO (the MCU wakes for every sample).")
@click.option("--no-gateway", is_flag=True,
              help="What-if: no gateway in range; the board advertises its batch windows for nobody.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def simulate(board, trace, policy, capacity_mah, hours, seed, plot, no_baseline, no_imu_wake, model, no_model,
             real, no_screen, no_fifo, no_gateway, as_json):
    """Simulate battery life and event recall (adaptive policy vs fixed-rate baseline).

    The policy, detector and SoC estimator are the firmware's own modules running under `micropython`;
    the battery and the current figures are a SIMULATION from the board file's datasheet numbers.
    """
    from ..progress import Bar
    from ..power.simulate import simulate as run
    try:
        # steps, not bytes: each simulation runs the firmware's code under micropython start to end, so the bar
        # names the step and counts the steps done (no ETA: the steps differ in length, and how many baseline
        # rates run depends on the results)
        with Bar("simulating", None, unit="steps", quiet=as_json) as bar:
            def step(name):
                bar.update(bar.done + (1 if bar.label != "simulating" else 0), label=name)
            r = run(board, trace, policy=policy, capacity_mah=capacity_mah, plot=plot, baseline=not no_baseline,
                    hours=hours, seed=seed, imu_wake=not no_imu_wake, model=None if no_model else (model or "demo"),
                    gateway=not no_gateway, real=real, screen=not no_screen, fifo=not no_fifo,
                    progress=step)
            bar.update(bar.done + 1, label="simulated")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e).splitlines()[0] if "micropython" not in str(e) else str(e))
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"board {r['board']}  trace {r['trace_hours']:.1f} h, {r['events']} events  capacity {r['capacity_mah']:.0f} mAh"
               + ("" if r["gateway"] else "  (no gateway in range: advertising for nobody)"))
    click.echo(f"adaptive : {r['life_days']:7.1f} days  avg {r['avg_ma']:.3f} mA  recall {r['recall']:.3f}  "
               f"precision {r['precision']:.3f}")
    if r.get("screen"):
        click.echo(f"screening: events {', '.join(r['event_labels'])}; {r['looks']} looks taken"
                   + (f"; envelope: {r['gated']} of {r['gates']} hops settled without the classifier"
                      if r.get("envelope") else "")
                   + (f"; IMU FIFO: {r['fifo_wakes']} watermark wakes" if r.get("fifo") else ""))
    if r.get("imu_wake"):
        d = r["detect_delay_s"]
        click.echo(f"IMU wake : {r['wakes']} wake-ups ({r['false_wakes']} without activity), asleep behind the IMU "
                   f"{r['armed_fraction'] * 100:.0f}% of the time, detection delay median {d['median'] or 0:.2f} s "
                   f"max {d['max'] or 0:.2f} s")
    rb = r["rec_bytes"]
    click.echo(f"telemetry: {r['reported']} acc records in bursts ({rb['change']} B each when reporting changes, "
               f"{rb['window']} B per hop otherwise); labels per hop {', '.join(f'{k} {v}' for k, v in r['labels'].items()) if r['labels'] else 'none (no model)'}")
    if "baseline_life_days" in r:
        click.echo(f"fixed {r['baseline_hz']:>2} Hz: {r['baseline_life_days']:7.1f} days  avg {r['baseline_avg_ma']:.3f} mA  "
                   f"recall {r['baseline_recall']:.3f}  precision {r['baseline_precision']:.3f}")
        click.echo(f"life ratio {r['life_ratio']:.1f}x")
    click.echo("energy by state (adaptive): " + ", ".join(f"{k} {v * 100:.1f}%" for k, v in
                                                      sorted(r["energy_by_state"].items(), key=lambda kv: -kv[1]) if v))
    if plot:
        click.echo(f"plot: {plot}")
