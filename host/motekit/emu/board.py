"""`mote sim --board B --emulate`: the virtual board's contract (a pty that stays put, --seed, --state surviving
restarts, --fresh, --blank, --link, reset and power cut by the supervisor) with the firmware in MicroPython's
qemu port on an emulated core standing in for the board's MCU (motekit.emu: Cortex-M0 for armv6m boards,
Cortex-M4F for armv7emsp ones); the heap is the board file's.

The launcher differs from the unix port's, the pump is the same (motekit.sim.supervisor.VirtualBoard):

  * flash: ``STATE/flash.lfs``, a littlefs image in a host file the guest reaches through ARM semihosting (it
    survives restarts and costs the guest no RAM); the firmware is written into it as `mote install` writes it
    (.mpy compiled for the arch, so native code costs heap as on the board), the board's data kept;
  * console: the core's UART on the supervisor's own pty (`-serial /dev/pts/N`: qemu 7.2 cannot be told which
    pty to create, and the name must stay put across reboots); when qemu exits (machine.reset(), a soft reset,
    a crash) the pty reads EIO and the pump boots the board again;
  * the board's ROM (in the image, motekit.emu's moteemu.c) mounts the flash and runs /main.py; the -append
    string gives it the flash, the seed-derived unique id and the sensor settings (hal/emu.py);
  * qemu dies with the supervisor (PR_SET_PDEATHSIG) and runs with `-icount shift=0` (ticks are instructions).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from ..sim.supervisor import VirtualBoard, _raw_pty, _set_pdeathsig, sim_uid
from . import core_for, qemu_image
from .qemu import flash_args, firmware_files, make_flash, qemu_command, update_image


class EmulatedBoard(VirtualBoard):
    def __init__(self, *a, ble=None, **kw):
        if ble is not None:
            raise ValueError("--emulate has no radio: leave out --ble")
        super().__init__(*a, **kw)
        self.core = core_for(self.board_info)          # NoCore: one line for boards with no emulated core
        self.heap_bytes = int(self.board_info["ram"]["heap_bytes"])
        self.fs_bytes = int((self.board_info.get("flash") or {}).get("fs_bytes") or (1 << 20))
        if self.state == Path.home() / ".cache" / "motekit" / "sim" / f"{self.board}-{self.seed}":
            self.state = self.state.with_name(f"{self.board}-{self.seed}-emu")
        self.flash = self.state / "flash.lfs"

    # -- flash ---------------------------------------------------------------------------------------------
    def install(self):
        if (self.fresh or self.blank) and self.state.exists():
            for item in self.state.iterdir():      # all but the state lock this board holds (VirtualBoard.start)
                if item != self._lock.path:
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "qemu.log").write_bytes(b"")     # qemu's own messages, this run's boots only
        self.image = qemu_image(self.core["arch"], self.heap_bytes)
        if self.blank:
            make_flash(self.flash, self.fs_bytes)          # erased: the ROM formats it, boots to the REPL
            return
        files = firmware_files(self.board_info)
        if self.trace is not None:
            from ..power.simulate import read_trace
            files["/trace.bin"] = read_trace(self.trace, hz=50).xyz.tobytes()
        update_image(self.flash, files, self.fs_bytes)

    def _append(self) -> str:
        words = [flash_args(self.flash), f"seed={self.seed}", f"uid={sim_uid(self.seed)}"]
        if self.trace is not None:
            words.append("trace=/trace.bin")
        if self.battery is not None:
            words += [f"soc={float(self.battery)}", "usb=0"]
        return " ".join(words)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _start(self) -> str:          # VirtualBoard.start: the state lock, then this
        self.install()
        self.exe = qemu_command(self.image)[0]
        self.port_master, self.port_slave = _raw_pty()
        self.port = os.ttyname(self.port_slave)
        if self.link:
            try:
                self.link.unlink()
            except FileNotFoundError:
                pass
            self.link.symlink_to(self.port)
        self._thread = threading.Thread(target=self._pump, name="mote-sim-pump", daemon=True)
        self._boot()
        self._thread.start()
        return str(self.link) if self.link else self.port

    def _boot(self):
        self.con_master, con_slave = _raw_pty()
        tty = os.ttyname(con_slave)
        log = open(self.state / "qemu.log", "ab")
        try:
            self._proc = subprocess.Popen(qemu_command(self.image, serial=tty, append=self._append()),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(self.state),
                                          start_new_session=True, preexec_fn=_set_pdeathsig)
        finally:
            log.close()
        # a pty master reads EIO while no slave is open: keep ours until qemu holds the tty
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._proc.poll() is None and not self._holds(tty):
            time.sleep(0.005)
        os.close(con_slave)
        self.boots += 1

    def _holds(self, tty: str) -> bool:
        d = f"/proc/{self._proc.pid}/fd"
        try:
            for fd in os.listdir(d):
                try:
                    if os.readlink(f"{d}/{fd}") == tty:
                        return True
                except OSError:
                    pass
        except OSError:
            pass
        return False
