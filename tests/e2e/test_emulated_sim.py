"""`mote sim --board pico_w --emulate`: the virtual board's serial contract with the firmware on an emulated
Cortex-M0 (MicroPython's qemu port, heap and flash as pico_w's board file, firmware as armv6m .mpy).

The e2e flow of the unix-port sim, on the emulated core: hello names the arch, monitor in order, provision,
a signed model flashed and verified on the device, status, rollback, a reset and a supervisor restart that
keep the flash, and `mote install` over the emulated UART onto a blank board."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mpy import ROOT, VECTORS, run_mpy

sys.path.insert(0, str(ROOT / "host"))
from motekit import builds  # noqa: E402

MOTE = str(Path(sys.executable).with_name("mote"))
TFLITE = VECTORS / "tflite" / "hello_world_int8.tflite"
pytestmark = pytest.mark.skipif(not TFLITE.exists(), reason="public model vectors not present")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from motekit.emu import qemu_image
    from motekit.keys import Keystore, raw_public
    from motekit.model.convert import convert
    try:
        qemu_image("armv6m", 196608)
    except builds.BuildError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no emulated boards here: {e}")
    home = tmp_path_factory.mktemp("home")
    os.environ["MOTEKIT_HOME"] = str(home)
    ks = Keystore()
    tl = ks.trust_list()
    key = Ed25519PrivateKey.generate()
    tl.add(raw_public(key), "good")
    tl.save()
    mtm = home / "hw.mtm"
    convert(TFLITE).write(mtm)
    blob = mtm.read_bytes() + bytes(random.Random(1).randrange(256) for _ in range(3000))
    (home / "hwp.mtm").write_bytes(blob)
    out = run_mpy("from mote.infer import Model\nimport sys\n"
                  f"sys.stdout.buffer.write(Model({str(home / 'hwp.mtm')!r}).run(bytes([10])))").stdout
    yield {"home": home, "blob": blob, "key": key, "canary": (b"\x0a", out)}
    os.environ.pop("MOTEKIT_HOME", None)


def signed(env, seq):
    from motekit.manifest import sign_model
    cin, cout = env["canary"]
    return sign_model(env["blob"], env["key"], name="hello", version=f"1.{seq}", seq=seq, boards=["pico_w"],
                      runtime="0.1.0", labels=["y"], canary_input=cin, canary_output=cout,
                      window=False)     # hello_world is not a window classifier (the trial checks it)


def mote(*args, timeout=90):
    p = subprocess.run([MOTE, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    assert "Traceback" not in p.stderr, p.stderr
    return p


def emulated(tmp_path, **kw):
    from motekit.emu.board import EmulatedBoard
    return EmulatedBoard(board="pico_w", seed=5, state_dir=tmp_path / "board", log=lambda m: None, **kw)


def test_emulated_pico_w_serial_flow(env, tmp_path):
    vb = emulated(tmp_path)
    port = vb.start()
    try:
        h = json.loads(mote("info", "--port", port, "--json").stdout)
        assert (h["board"], h["impl"], h["arch"]) == ("pico_w", "micropython", "armv6m"), h
        assert h["id"] == __import__("motekit.sim.supervisor", fromlist=["sim_uid"]).sim_uid(5)
        recs = [json.loads(x) for x in mote("monitor", "--port", port, "--json", "-n", "4").stdout.splitlines()]
        seqs = [r["seq"] for r in recs]
        assert len(seqs) == 4 and seqs == sorted(seqs) and len(set(seqs)) == 4, seqs
        p = mote("provision", "--port", port)
        assert p.returncode == 0 and "board trusts 1 key(s)" in p.stdout, p.stderr
        for seq in (1, 2):
            f = tmp_path / f"m{seq}.signed"
            f.write_bytes(signed(env, seq))
            p = mote("flash", "--port", port, str(f), "--json")
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["active"]["seq"] == seq
        st = mote("status", "--port", port)
        rows = [ln.split() for ln in st.stdout.splitlines()]
        assert ["a", "hello", "1.1", "1", "previous"] in rows and "models with seq > 2 only" in st.stdout, st.stdout
        p = mote("rollback", "--port", port)
        assert p.returncode == 0 and "seq 1, slot a" in p.stdout, p.stdout + p.stderr
        boot = json.loads(mote("info", "--port", port, "--json").stdout)["boot"]
        vb.reset()                                   # the supervisor power-cycles the core
        h = json.loads(mote("info", "--port", port, "--json").stdout)
        assert h["boot"] > boot and h["model"]["seq"] == 1, h
    finally:
        vb.stop()
    assert vb._proc.poll() is not None               # qemu went with its supervisor
    vb = emulated(tmp_path)                          # same state dir: the flash file survives a restart
    port = vb.start()
    try:
        h = json.loads(mote("info", "--port", port, "--json").stdout)
        assert h["model"]["seq"] == 1 and h["arch"] == "armv6m", h
    finally:
        vb.stop()


def test_install_over_the_emulated_uart(env, tmp_path):
    """A blank emulated Pico W (erased flash, the ROM boots to the REPL): `mote install` compiles the firmware to
    armv6m .mpy and writes it over the UART; the board then says hello with its arch."""
    vb = emulated(tmp_path, blank=True)
    port = vb.start()
    try:
        p = mote("install", "--port", port, "--board", "pico_w", timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "armv6m" in p.stdout + p.stderr
        h = json.loads(mote("info", "--port", port, "--json").stdout)
        assert (h["board"], h["arch"]) == ("pico_w", "armv6m"), h
    finally:
        vb.stop()


def _children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def test_cli_refuses_esp32_and_qemu_dies_with_its_supervisor(env, tmp_path):
    p = mote("sim", "--board", "esp32s3_devkitc", "--emulate")
    err = [x for x in p.stderr.splitlines() if x.startswith("Error:")]
    assert p.returncode != 0 and len(err) == 1 and "no emulated core" in err[0], p.stderr
    import signal
    import time
    sim = subprocess.Popen([MOTE, "sim", "--board", "pico_w", "--emulate", "--state", str(tmp_path / "b")],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = sim.stdout.readline().strip()
        assert port.startswith("/dev/")
        h = json.loads(mote("info", "--port", port, "--json").stdout)
        assert h["arch"] == "armv6m"
        kids = _children(sim.pid)
        assert kids, "no qemu under the supervisor"
        sim.send_signal(signal.SIGKILL)
        sim.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{k}").exists() and "zombie" not in _state(k) for k in kids):
            assert time.monotonic() < deadline, "qemu outlived its supervisor"
            time.sleep(0.05)
    finally:
        if sim.poll() is None:
            sim.kill()


def _state(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "gone"
