"""The BLE test rig: a private D-Bus daemon with BlueZoo standing in for bluetoothd. No radio.

    rig = Rig(); rig.start()          # rig.address: the bus; rig.env(): DBUS_SYSTEM_BUS_ADDRESS=...
    ...                               # hci0 is the central (bleak), hci1.. the virtual boards' radios
    rig.stop()

The bus is a stock ``dbus-daemon --session`` (its session configuration allows the bursts of pending
replies a notification stream makes; a minimal hand-written one caps them at 128) on a socket in a
private directory; everything that talks BlueZ (bleak, the virtual board's bridge) is pointed at it with
``DBUS_SYSTEM_BUS_ADDRESS``. BlueZoo runs patched (:mod:`motekit.ble.zoo`). Both processes die with the
process that started them, even on SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CENTRAL = "hci0"
CENTRAL_ADDRESS = "C0:DE:C0:DE:00:00"


def board_address(i: int) -> str:
    """The (public) address of the i-th virtual board radio on the rig (adapter hci<i>, i >= 1)."""
    return f"C0:DE:C0:DE:01:{i:02X}"


class RigError(RuntimeError):
    pass


def _pdeathsig():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def dbus_daemon() -> str:
    exe = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
    if not os.path.exists(exe):
        raise RigError("the BLE rig needs dbus-daemon: apt-get install dbus-daemon (Debian/Ubuntu)")
    return exe


class Rig:
    def __init__(self, boards: int = 1, scan_interval: float = 0.25, verbose: bool = False):
        self.boards = boards
        self.scan_interval = scan_interval
        self.verbose = verbose
        self.dir: str | None = None
        self.address: str | None = None
        self.procs: list[subprocess.Popen] = []
        self._log: list[str] = []

    # adapters: hci0 = central, hci1..hciN = board radios
    @property
    def central(self) -> str:
        return CENTRAL

    def board_adapter(self, i: int = 1) -> str:
        return f"hci{i}"

    def env(self) -> dict:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def start(self, timeout: float = 20.0) -> str:
        self.dir = tempfile.mkdtemp(prefix="mote-ble-rig-")
        sock = os.path.join(self.dir, "system_bus_socket")
        bus = subprocess.Popen(
            [dbus_daemon(), "--session", "--nofork", "--nopidfile", f"--address=unix:path={sock}",
             "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_pdeathsig,
            start_new_session=True)
        self.procs.append(bus)
        line = self._readline(bus, timeout, "dbus-daemon")
        self.address = line.strip()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        args = [sys.executable, "-m", "motekit.ble.zoo", "--scan-interval", str(self.scan_interval),
                "-a", CENTRAL_ADDRESS]
        for i in range(1, self.boards + 1):
            args += ["-a", board_address(i)]
        if self.verbose:
            args.append("-vv")
        zoo = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=None if self.verbose else subprocess.DEVNULL,
                               text=True, env=env, preexec_fn=_pdeathsig, start_new_session=True)
        self.procs.append(zoo)
        line = self._readline(zoo, timeout, "bluezoo")
        if line.strip() != "ready":
            self.stop()
            raise RigError(f"bluezoo did not start: {line!r}")
        return self.address

    def _readline(self, proc, timeout, what) -> str:
        out: list[str] = []
        t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not out or not out[0]:
            err = ""
            if proc.poll() is not None and proc.stderr is not None:
                err = proc.stderr.read()
            self.stop()
            raise RigError(f"{what} did not start within {timeout:g} s {err}".strip())
        return out[0]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    """``python -m motekit.ble.rig``: run a rig until interrupted, printing the export line."""
    import argparse
    p = argparse.ArgumentParser(description="Private D-Bus + BlueZoo (BLE rig without a radio)")
    p.add_argument("--boards", type=int, default=1)
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    rig = Rig(boards=a.boards, verbose=a.verbose)
    rig.start()
    print(f"export DBUS_SYSTEM_BUS_ADDRESS={rig.address}", flush=True)
    try:
        while rig.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        rig.stop()


if __name__ == "__main__":
    main()
