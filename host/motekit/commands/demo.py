"""`mote demo`: a guided tour on a virtual board, running the same `mote` commands a user types.

Boot a board, read it, train and convert a gesture model, sign it, flash it, watch it classify, simulate
its battery life on a Pico W, and relay its telemetry to an MQTT broker. Everything runs in a temporary directory; nothing is kept.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from ..sim import VirtualBoard
from .common import user_errors

MOTE = str(Path(sys.executable).with_name("mote"))


class Tour:
    def __init__(self, tmp: Path, verbose: bool):
        self.tmp = tmp
        self.env = dict(os.environ, MOTEKIT_HOME=str(tmp / "home"))
        self.verbose = verbose
        self.step_no = 0

    def step(self, title: str):
        self.step_no += 1
        click.secho(f"\n{self.step_no}. {title}", bold=True)

    def run(self, *args: str, show: bool = True, timeout: float = 120, check: bool = True,
            live: bool = False) -> subprocess.CompletedProcess:
        """Run `mote ARGS` as a user would, echoing the command and (indented) its output."""
        shown = " ".join(shlex.quote(a) if " " in a else a for a in args)
        click.secho(f"   $ mote {shown}", fg="cyan")
        if live:      # let progress bars draw on the terminal
            proc = subprocess.run([MOTE, *args], env=self.env, timeout=timeout, stdout=subprocess.PIPE, text=True)
        else:
            proc = subprocess.run([MOTE, *args], env=self.env, timeout=timeout, capture_output=True, text=True)
        if show and proc.stdout:
            for line in proc.stdout.rstrip().splitlines():
                click.echo(f"     {line}")
        if check and proc.returncode != 0:
            raise click.ClickException(f"`mote {shown}` failed: {(proc.stderr or '').strip().splitlines()[-1:]}")
        return proc


def _records(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]


def _fmt(rec: dict) -> str:
    vals = {r.get("n"): r.get("v", r.get("vs")) for r in rec.get("records", [])}
    parts = [f"seq {rec['seq']:3d}", f"{rec['type']:3}", f"{rec['size']:3d} B"]
    if "label" in vals:
        parts.append(f"label={vals['label']:<7} conf={vals.get('conf', 0):.2f} lat={vals.get('lat_ms', 0):.2f} ms")
    parts.append(" ".join(f"{k}={v:+.2f}" for k, v in vals.items() if k in ("ax", "ay", "az")))
    return "  ".join(parts)


@click.command()
@click.option("--count", "-n", type=click.IntRange(min=1), default=5, show_default=True,
              help="Telemetry records to show at each stage.")
@click.option("--seed", type=int, default=1, show_default=True, help="The virtual board's seed.")
@click.option("--no-relay", is_flag=True, help="Skip the MQTT relay stage.")
@click.option("-v", "--verbose", is_flag=True)
def demo(count, seed, no_relay, verbose):
    """A guided tour on a virtual board: telemetry, a signed model flashed, classifying, relayed to MQTT."""
    try:
        from ..model import demo as _model_demo, tflite_writer  # noqa: F401  (numpy, flatbuffers, tflite)
        import cryptography  # noqa: F401
    except ImportError as e:
        raise click.ClickException(f"mote demo needs the model and signing extras ({e}): "
                                   f"pip install 'motekit[sim,install,model,signing,power,relay]'") from None
    with user_errors(), tempfile.TemporaryDirectory(prefix="mote-demo-") as tmpdir:
        tmp = Path(tmpdir)
        tour = Tour(tmp, verbose)
        vb = VirtualBoard(seed=seed, state_dir=tmp / "board", log=lambda m: None)
        port = vb.start()
        try:
            _tour(tour, port, count, no_relay)
        finally:
            vb.stop()
    click.secho("\ndone. Next: `mote sim` in one terminal, `mote monitor --port <path>` in another "
                "(README.md has every command).", fg="green")


def _tour(tour: Tour, port: str, count: int, no_relay: bool):
    tmp = tour.tmp
    tour.step(f"A virtual board: the firmware in MicroPython's unix port, on the serial port {port}")
    tour.run("info", "--port", port)

    tour.step("Its telemetry: accelerometer window features, SenML records in CBOR frames")
    p = tour.run("monitor", "--port", port, "--json", "--count", str(count), show=False)
    for r in _records(p.stdout):
        click.echo("     " + _fmt(r))

    tour.step("A gesture classifier: trained with numpy on the sim's motion, written as an int8 .tflite")
    model_dir = tmp / "model"
    from ..model import demo as make_demo_model
    make_demo_model.main(["-o", str(model_dir)])
    labels = (model_dir / "labels.txt").read_text().split()
    tour.run("model", "check", str(model_dir / "gesture.tflite"), "--board", "pico_w")

    tour.step("Sign it (Ed25519, COSE_Sign1 manifest) and trust the key")
    tour.run("keys", "generate", "demo", "--trust")
    signed = tmp / "gesture.signed"
    args = ["model", "sign", str(model_dir / "gesture.mtm"), "--key", "demo", "-o", str(signed),
            "--name", "gesture", "--version", "1.0", "--seq", "1", "--board", "sim"]
    for lab in labels:
        args += ["--label", lab]
    tour.run(*args)
    tour.run("model", "verify", str(signed))

    tour.step("Flash it: the board checks hash, signature, key, board and sequence, then trial-boots it")
    tour.run("provision", "--port", port)
    tour.run("flash", str(signed), "--port", port, live=True, timeout=300)
    tour.run("status", "--port", port)

    tour.step("The board classifies every window; label, confidence and latency ride in the telemetry")
    p = tour.run("monitor", "--port", port, "--json", "--count", str(count * 2), show=False, timeout=120)
    got = [r for r in _records(p.stdout) if r["type"] == "acc"]
    for r in got[:count * 2]:
        click.echo("     " + _fmt(r))

    tour.step("On battery: the firmware's own power policy, with this model, over a 1-hour synthetic trace "
              "(a SIMULATION on the board file's figures)")
    tour.run("power", "simulate", "--board", "pico_w", "--hours", "1", "--model", str(model_dir / "gesture.mtm"),
             timeout=300)

    if no_relay:
        return
    tour.step("Relay the telemetry to an MQTT broker, store-and-forward")
    try:
        from ..relay.testing import Broker, Recorder
        broker = Broker(tmp / "broker")
    except (ImportError, RuntimeError) as e:
        click.echo(f"   (skipped: {e})")
        return
    broker.start()
    relay = None
    sub = None
    try:
        sub = Recorder(broker.port)
        sub.wait_connected()
        cmd = ["relay", "--from", f"serial:{port}", "--to", f"mqtt://127.0.0.1:{broker.port}/motekit",
               "--spool", str(tmp / "relay.db"), "--json-log"]
        click.secho("   $ mote " + " ".join(cmd) + " &", fg="cyan")
        relay = subprocess.Popen([MOTE, *cmd], env=tour.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        click.secho(f"   subscribed to motekit/+/telemetry on 127.0.0.1:{broker.port}:", fg="cyan")
        deadline = time.monotonic() + 90
        labelled = []
        msgs = []
        while len(labelled) < count and time.monotonic() < deadline:
            time.sleep(0.3)
            with sub.lock:
                msgs = [rec for _, rec in sub.msgs]
            labelled = [m for m in msgs if any(r.get("n") == "label" for r in m.get("records", []))]
        if not msgs:
            raise click.ClickException("the relay delivered nothing to the broker within 90 s")
        seqs = sorted({m.get("seq") for m in msgs})
        click.echo(f"     {len(msgs)} records relayed, seq {seqs[0]}..{seqs[-1]}: first what the board kept "
                   f"since boot (no one had acknowledged it), then live ones; the latest classified:")
        for rec in labelled[-count:]:
            click.echo(f"     motekit/{rec.get('device')}/telemetry  boot {rec.get('boot')} seq {rec.get('seq')}  "
                       + " ".join(f"{r.get('n')}={r.get('v', r.get('vs'))}" for r in rec.get("records", [])
                                  if r.get("n") in ("label", "conf")))
        if len(labelled) < count:
            raise click.ClickException("no classified records reached the broker within 90 s")
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
        if sub is not None:
            sub.close()
        broker.stop()
