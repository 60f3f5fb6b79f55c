"""One CLI voice: a short option means one thing in every command, one wording per error whichever command
meets it, exit codes as README.md documents them, help text as it is printed."""

import os
import subprocess
import sys
from pathlib import Path

import click

from motekit.cli import main

MOTE = str(Path(sys.executable).with_name("mote"))
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(group, path=("mote",)):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_one_meaning_per_short_option():
    seen = {}
    for path, cmd in _commands(main):
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            longs = sorted(o for o in p.opts + p.secondary_opts if o.startswith("--"))
            for short in (o for o in p.opts if len(o) == 2):
                seen.setdefault(short, {}).setdefault(longs[0] if longs else short, []).append(" ".join(path))
    clashes = {s: m for s, m in seen.items() if len(m) > 1}
    assert not clashes, clashes
    assert list(seen["-p"]) == ["--port"]


def test_help_reads_as_printed():
    for path, cmd in _commands(main):
        with click.Context(cmd, info_name=" ".join(path)) as ctx:
            text = cmd.get_help(ctx)
        assert "%%" not in text, path


def _mote(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("MOTE_PORT", "MOTE_BLE_TARGET")}
    return subprocess.run([MOTE, *args], capture_output=True, text=True, timeout=60, env=env)


def test_exit_codes_are_the_documented_ones():
    assert "exit code 1" in README and "exits 2" in README
    for args, words in ((["info", "--bogus"], "No such option '--bogus'"),
                        (["info"], "which board? give --port PORT"),
                        (["power", "simulate", "-p", "x.json"], "No such option '-p'")):
        p = _mote(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and words in p.stderr and p.stdout == "", p.stderr
    p = _mote("info", "--port", "/dev/does-not-exist")
    assert p.returncode == 1 and p.stderr.count("\n") == 1


def test_one_wording_per_port_error():
    want = ("Error: no such port /dev/does-not-exist: run `mote ports` to list serial ports (a virtual board "
            "prints its port as the first line of `mote sim`)\n")
    for args in (["info"], ["monitor", "--count", "1"], ["install", "--board", "sim"]):
        p = _mote(*args, "--port", "/dev/does-not-exist")
        assert p.returncode == 1 and p.stderr == want, (args, p.stderr)


def test_model_check_lines_fit_a_terminal():
    from mpy import VECTORS
    p = _mote("model", "check", str(VECTORS / "tflite" / "mnist_cnn_int8.tflite"), "--board", "pico_w")
    assert p.returncode == 0 and "est. latency" in p.stdout, p.stderr
    assert max(len(line) for line in p.stdout.splitlines()) <= 120, p.stdout


def test_progress_figures_are_the_callers_and_stop_with_the_step():
    """The bar's rate is progress over wall time since the step began (a resumed part not counted), frozen
    when the step completes (so the summary quoting it agrees); the ETA follows from it."""
    import time as _time

    from motekit.progress import Bar, eta
    bar = Bar("uploading", 1000, quiet=True)
    bar.t0 = _time.monotonic() - 2.0
    bar.update(600, start=200)
    assert 190 < bar.rate() <= 200 and 1.9 < bar.remaining() < 2.2
    bar.update(1000)
    frozen = bar.rate()
    _time.sleep(0.05)
    assert bar.rate() == frozen and bar.remaining() == 0
    assert eta(None) == "--:--" and eta(75) == "01:15" and eta(3725) == "1:02:05"
    assert Bar("steps", None, unit="steps", quiet=True)._fields()["eta"] == ""
