"""The distribution is self-contained: the wheel, installed with pip in a fresh venv outside the checkout, runs
`mote sim`, `mote install` onto `mote sim --blank`, `mote power simulate` and the whole `mote demo` from a
temporary directory (what a user gets from `pipx install 'motekit[...]'`)."""

import glob
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = "sim,install,model,signing,power,relay"      # README's pipx line


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # build isolation: pip fetches the build backend (its cache makes that quick)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    whl = glob.glob(str(dist / "motekit-*.whl"))[0]
    names = zipfile.ZipFile(whl).namelist()
    assert "motekit/_data/firmware/main.py" in names and "motekit/_data/boards/schema.json" in names
    assert "motekit/sim/mpy/bluetooth.py" in names and "motekit/model/demo.py" in names
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    p = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        f"{whl}[{EXTRAS}]"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MOTEKIT_", "MOTE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp / "home"), MOTEKIT_HOME=str(tmp / "home" / "motekit"),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return venv / "bin" / "mote", work, env


def _run(installed, *args, timeout=120):
    mote, work, env = installed
    return subprocess.run([str(mote), *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def _sim(installed, *args):
    mote, work, env = installed
    proc = subprocess.Popen([str(mote), "sim", *args], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    assert port.startswith("/dev/"), proc.stderr.read() if proc.poll() is not None else port
    return proc, port


def _stop(proc):
    proc.terminate()
    proc.wait(timeout=10)


def test_the_package_reads_nothing_from_the_checkout(installed):
    mote, work, env = installed
    code = "from motekit import paths; print(paths.firmware_dir()); print(paths.boards_dir())"
    out = subprocess.run([str(mote.with_name("python")), "-c", code], cwd=work, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    for d in out:
        assert "site-packages" in d and not d.startswith(str(ROOT)), d


def test_sim_and_install_from_the_wheel(installed):
    proc, port = _sim(installed, "--seed", "31")
    try:
        p = _run(installed, "info", "--port", port, "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["board"] == "sim"
    finally:
        _stop(proc)
    proc, port = _sim(installed, "--blank", "--seed", "32")
    try:
        time.sleep(0.5)
        p = _run(installed, "install", "--port", port, "--board", "sim", timeout=180)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        assert "all verified" in p.stdout
        assert json.loads(_run(installed, "info", "--port", port, "--json").stdout)["fw"]
    finally:
        _stop(proc)


def test_power_simulate_from_the_wheel(installed):
    p = _run(installed, "power", "simulate", "--hours", "0.2", "--json", timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["life_days"] > 0 and r["labels"]        # the demo model was built from the package and classified


def test_demo_from_the_wheel(installed):
    """The whole tour, relay stage included when Mosquitto is installed (`./dev test` installs it)."""
    p = _run(installed, "demo", "--count", "2", timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "active: gesture 1.0" in p.stdout and "life ratio" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr
