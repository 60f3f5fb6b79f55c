"""What a person reads is a table (labelled, aligned, no Python reprs); with --json, one JSON object."""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from motekit import procs

MOTE = str(Path(sys.executable).with_name("mote"))


def mote(*args, env=None):
    return subprocess.run([MOTE, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    sim = subprocess.Popen([MOTE, "sim", "--state", str(tmp_path_factory.mktemp("out") / "b"), "--seed", "43"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p = sim.stdout.readline().strip()
    assert p, sim.stderr.read()
    yield p
    procs.stop(sim, signal.SIGINT)


def readable(out: str):
    assert out.strip() and "None" not in out and "{" not in out and "[" not in out and "n/a" not in out, out
    assert all(line == line.rstrip() for line in out.splitlines())


def aligned(out: str):
    """label/value rows: every value starts in the same column."""
    starts = {m.end() for m in (re.match(r"\S.*?\S?  +", ln) for ln in out.splitlines() if ln.strip()) if m}
    assert len(starts) == 1, out


@pytest.mark.parametrize("cmd", ["info", "stats", "status", "config"])
def test_board_views_are_tables_and_one_json_object(port, cmd):
    p = mote(cmd, "--port", port)
    assert p.returncode == 0, p.stderr
    readable(p.stdout)
    if cmd != "status":
        aligned(p.stdout)
    j = mote(cmd, "--port", port, "--json")
    assert isinstance(json.loads(j.stdout), dict)           # the whole output is one object
    if cmd == "info":
        assert re.search(r"^model +none: `mote flash MODEL.signed` installs one$", p.stdout, re.M), p.stdout
    if cmd == "stats":
        assert re.search(r"^spool\s+\d+ queued, \d+ dropped$", p.stdout, re.M) and "free heap" in p.stdout


def test_ports_table_and_json(port):
    p = mote("ports", port)
    readable(p.stdout)
    row = [ln.split() for ln in p.stdout.splitlines() if ln.startswith(port)][0]
    assert row[:3] == [port, "motekit", "sim"]
    j = json.loads(mote("ports", port, "--json").stdout)
    assert [x for x in j["ports"] if x["port"] == port][0]["motekit"]["board"] == "sim"


def test_keys_list_table_and_json(tmp_path):
    import os
    env = dict(os.environ, MOTEKIT_HOME=str(tmp_path))
    assert mote("keys", "generate", "rel", "--trust", env=env).returncode == 0
    p = mote("keys", "list", env=env)
    readable(p.stdout)
    assert p.stdout.splitlines()[0].split() == ["name", "kid", "kind", "status"]
    j = json.loads(mote("keys", "list", "--json", env=env).stdout)
    assert [k["name"] for k in j["keys"]] == ["rel"] and j["keys"][0]["status"] == "trusted"


def test_a_board_at_its_repl_names_the_commands_to_run(tmp_path):
    sim = subprocess.Popen([MOTE, "sim", "--blank", "--state", str(tmp_path / "b"), "--seed", "44"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p = sim.stdout.readline().strip()
        for _ in range(20):     # a just-freed /dev/pts number can stay locked by a dying process (loaded CI)
            r = mote("info", "--port", p)
            if "busy" not in r.stderr:
                break
        assert r.returncode == 1 and f"`mote install --port {p} --board BOARD`" in r.stderr
        assert f"`mote resume --port {p}`" in r.stderr and "Ctrl-D" not in r.stderr
    finally:
        procs.stop(sim, signal.SIGINT)
