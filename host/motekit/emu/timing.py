"""Board timing figures from instruction counts on the emulated core (docs/emulation.md, "Board timing").

The power simulator charges the firmware's CPU time from ``boards/*.json`` ``timing``. The parts of those
figures that are firmware compute are counted here, on the board's emulated core (qemu ``-icount shift=0``:
``ticks_us`` x 1000 = instructions retired), running the firmware's own code from ``.mpy`` as ``mote install``
writes it, with the board's own file and heap, on battery (the policy's detector runs as it does unplugged):

  classify     the hop's classification: ``Classifier.run`` on the app's ring with the README's demo gesture
               model (unroll the ring, quantize, infer, SenML records), with the board's kernel set;
  fifo_sample  one sample taken from the IMU's FIFO: ``App.sample(t)`` (``imu_lsm6.fifo_read`` for the board's
               part, the activity detector ``Power.sample`` -> ``policy.sample``, the ring);
  loop         one pass of the app loop that samples without the FIFO (``App._pass``: link poll, power tick,
               ``imu_lsm6.read_into``, the detector), hops excluded (median over 200 passes);
  report       one reported hop: ``App.features`` + ``report.acc_pack`` + ``Telemetry.emit`` and its ack;
  boot         importing ``mote.app`` and everything it imports, ``App()`` (store check, spool, policy) and
               loading the demo model (validate, load, the probe inference).

The I2C bus is a stand-in (``machine.I2C`` has no device here) behind the firmware's own bus adapter
(``mote.hal.mpy.I2CBus``'s two lines): the stand-in's own instructions are counted alone and subtracted, the bus
time is added from the transfer's bits at 400 kHz. Wake-up and runtime-start latencies are hardware and runtime
(not firmware compute): they stay estimates, named per board in BOARDS below.

Time = instructions x CPI / clock over the board's assumed CPI range; the single figure is at the harmonic
middle of the range (the CPI at which the MAC rate is the middle of its range, as ``infer``'s figures).
``tools/bench_mcu.py --write-boards`` writes them; tests/e2e/test_emulated.py recounts and checks the board files.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import qemu

# board -> core, clock, assumed CPI range and why; the hardware/runtime parts of its timing (estimates).
# "heap": counted with this heap instead of the board file's: under MicroPython the firmware and App() do not
# fit the nRF52840 boards' 128 KiB (App() ends in a MemoryError with 14 KB free on the emulated board), so their
# counts run on pico2_w's 400 KiB image of the same core (instruction counts do not depend on the heap's size,
# apart from how often the GC runs)
BOARDS = {
    "pico_w": {
        "arch": "armv6m", "clock": 133e6, "cpi": (1.4, 2.5),
        "why": "RP2040 Cortex-M0+ running from XIP flash (16 KB cache): ~1.4 with a warm cache and single-cycle "
               "SRAM loads, up to ~2.5 with cache misses (flash at 1/2 clock)",
        "wake_ms": 1.0, "wake_why": "machine.lightsleep exit (xosc restart) ~1 ms, the figure gpio_wake_ms uses",
    },
    "pico2_w": {
        "arch": "armv7emsp", "clock": 150e6, "cpi": (1.1, 2.0),
        "why": "RP2350 Cortex-M33 from XIP flash (counts of the Cortex-M4F stand-in; dual-issue-free M33 pipeline "
               "~1.1 warm, ~2.0 with cache misses)",
        "wake_ms": 1.0, "wake_why": "machine.lightsleep exit ~1 ms, the figure gpio_wake_ms uses",
    },
    "feather_nrf52840_sense": {
        "arch": "armv7emsp", "clock": 64e6, "cpi": (1.2, 1.8),
        "why": "nRF52840 Cortex-M4F at 64 MHz, flash with cache (0 wait states when cached); its firmware is "
               "CircuitPython: pure kernels",
        "heap": 409600,
        "wake_ms": 1.0, "wake_why": "CircuitPython resuming Python after a timed sleep (RTC wake of the nRF52840 "
                                    "is microseconds; the runtime's tick and busio re-entry, estimate ~1 ms)",
        "boot_runtime_ms": 1000, "boot_why": "CircuitPython supervisor start to code.py ~0.45 s (9.2.7) / ~1.5 s "
                                             "(10.x) measured with a PPK2 on a QT Py ESP32-S3 (adafruit/circuitpython "
                                             "issue #10934), taken as ~1 s, no safe-mode wait on an alarm wake",
    },
    "xiao_nrf52840_sense": {
        "arch": "armv7emsp", "clock": 64e6, "cpi": (1.2, 1.8),
        "why": "nRF52840 Cortex-M4F at 64 MHz, as the Feather; its firmware is CircuitPython: pure kernels",
        "heap": 409600,
        "wake_ms": 1.0, "wake_why": "CircuitPython resuming Python after a timed sleep, as the Feather (estimate)",
        "boot_runtime_ms": 1000, "boot_why": "CircuitPython supervisor start to code.py, as the Feather (~1 s, "
                                             "estimate from adafruit/circuitpython issue #10934's measurements)",
    },
}
I2C_HZ = 400e3
# I2C bus bits of a register read of n bytes: START, address+W, register, repeated START, address+R, n bytes,
# each byte 9 bits with its ACK, STOP (about a bit each for START/rSTART/STOP)
def i2c_read_ms(n: int) -> float:
    return (3 + 9 * 3 + 9 * n) / I2C_HZ * 1e3


WHO = {"LSM6DSOX": 0x6C, "LSM6DS3TR-C": 0x6A, "LSM6DS3": 0x69, "LSM6DS33": 0x69}
FIFO_WORD = {"LSM6DSOX": 7}          # a DSOX FIFO word is a tag + x, y, z; the DS3 parts read 6 bytes

GUEST = r"""
import gc, time
from array import array
T = time.ticks_us
D = time.ticks_diff
gc.collect()
t0 = T()
from mote.hal import emu
t_imp = D(T(), t0)
WHO = %(who)d
WORD = %(word)d
# the sim's motion (mote.motion, by seed) as the IMU's FIFO words / output registers
acc = emu.Accel(7, 50)
ring = array('h', bytes(1200))
for i in range(200):
    acc.read_into(ring, 3 * i)
W = []
for i in range(200):
    b = bytearray(7)
    b[0] = 2 << 3
    for a in range(3):
        v = ring[3 * i + a] & 0xFFFF
        b[1 + 2 * a] = v & 255
        b[2 + 2 * a] = v >> 8
    W.append(bytes(b) if WORD == 7 else bytes(b[1:]))
del ring, acc, b
gc.collect()
t0 = T()
from mote.app import App
from mote import imu_lsm6
from mote.report import acc_pack
from mote.store import load_model
from mote.infer import Model
t_imp += D(T(), t0)
class I2C:
    # machine.I2C's stand-in: WHO_AM_I, the FIFO's count, its words / the output registers from W
    def __init__(self):
        self.i = 0
    def readfrom_mem_into(self, a, reg, buf):
        if reg == 0x0F:
            buf[0] = WHO
        elif reg == 0x3A:
            buf[0] = 25
            buf[1] = 0
        else:
            w = W[self.i]
            self.i = self.i + 1 if self.i < 199 else 0
            buf[0:len(buf)] = w[0:len(buf)]
    def writeto_mem(self, a, reg, b):
        pass
class Bus:
    # mote.hal.mpy.I2CBus (its read/write, verbatim)
    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self.b1 = bytearray(1)
    def read(self, reg, buf):
        self.i2c.readfrom_mem_into(self.addr, reg, buf)
    def write(self, reg, value):
        self.b1[0] = value
        self.i2c.writeto_mem(self.addr, reg, self.b1)
class Port:
    # the link's port: writes are taken (a host reading), nothing comes in
    def begin(self):
        pass
    def end(self):
        pass
    def readinto(self, buf):
        return 0
    def write(self, data):
        return len(data)
    def wait(self, ms):
        pass
board = emu.Board()
board.serial = Port()
i2c = I2C()
board.accel = imu_lsm6.LSM6(Bus(i2c, 0x6A), 52)
gc.collect()
t0 = T()
app = App(board)
t_app = D(T(), t0)
gc.collect()
t0 = T()
m = load_model('/demo.mtm')
app.clf._probe(m)
t_load = D(T(), t0)
del m
def med(fn, n, skip=None):
    ts = []
    for k in range(n):
        gc.collect() if k %% 50 == 0 else None
        t = T()
        r = fn()
        dt = D(T(), t)
        if skip is None or not skip(r):
            ts.append(dt)
    ts.sort()
    return ts[len(ts) // 2]
out = {'import': t_imp, 'app': t_app, 'load': t_load}
w = bytearray(WORD)
def batch(fn, n):
    # n calls in one stretch (nothing here allocates: no GC inside): instructions per call x 1000
    gc.collect()
    t = T()
    for k in range(n):
        fn()
    return D(T(), t) * 1000 // n
out['i2c_fifo'] = batch(lambda: i2c.readfrom_mem_into(0x6A, 0x78, w), 200)
w6 = bytearray(6)
out['i2c_read'] = batch(lambda: i2c.readfrom_mem_into(0x6A, 0x28, w6), 200)
out['fifo_sample'] = batch(lambda: app.sample(1000), 200)
out['loop'] = med(lambda: app._pass(time.ticks_add(time.ticks_ms(), -100), app.link, None), 200,
                  skip=lambda r: app.since_hop == 0)
gc.collect()
for k in %(kernels)r:
    app.clf.model = None
    gc.collect()
    app.clf.model = Model('/demo.mtm', kernels=k, checked=True)    # validated above (load_model)
    app.clf.buf = array('h', bytes(6 * app.win_n))
    app.clf.run(app.win, app.idx)
    out['classify_' + k] = med(lambda: app.clf.run(app.win, app.idx), 5)
cls = app.clf.run(app.win, app.idx)
tel = app.tel
tel.session(app.link, resend=False)
def report():
    app.emit('acc', acc_pack(app.features(), cls, False, True, 0))
    tel.ack(app.boot, tel.seq)
report()
out['report'] = med(report, 9)
print(out)
"""


def count(board: str, demo: bytes, files: dict[str, bytes] | None = None, tmp: Path | None = None,
          kernels=("viper32", "pure")) -> dict:
    """Instructions retired for each part (see the module's docstring) on ``board``'s emulated core, with its
    heap and board file: {"classify_viper32": n, "fifo_sample": n, ...} (instructions; the I2C stand-in's
    own instructions subtracted)."""
    import tempfile
    from .. import boards
    info = boards.load(board)
    spec = BOARDS[board]
    part = info["sensors"]["imu"]["part"]
    files = files if files is not None else qemu.firmware_files(dict(info, mpy_arch=spec["arch"]))
    code = GUEST % {"who": WHO[part], "word": FIFO_WORD.get(part, 6), "kernels": tuple(kernels)}
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        img = qemu.write_image(Path(d) / "flash", {**files, "/demo.mtm": demo}, 1 << 20)
        with qemu.Board(spec["arch"], int(spec.get("heap") or info["ram"]["heap_bytes"]), flash=img, append="usb=0 soc=80",
                        timeout=300) as b:
            raw = eval(b.exec(code).strip().splitlines()[-1], {})      # noqa: S307 (our guest's dict of ints)
    us = {k: int(v) for k, v in raw.items()}
    out = {
        "fifo_sample": us["fifo_sample"] - us["i2c_fifo"],          # (per call x 1000 already)
        "loop": us["loop"] * 1000 - us["i2c_read"],
        "report": us["report"] * 1000,
        "boot": (us["import"] + us["app"] + us["load"]) * 1000,
    }
    for k in kernels:
        out[f"classify_{k}"] = us[f"classify_{k}"] * 1000
    return out


def _ms(insns: float, clock: float, cpi: float) -> float:
    return insns * cpi / clock * 1e3


def _r(x: float) -> float:
    return float(f"{x:.3g}")


def derive(board: str, insns: dict, kernels: str) -> dict:
    """The board's timing figures from the counts: {field: (figure, [low, high])} plus the texts."""
    from .. import boards
    info = boards.load(board)
    spec = BOARDS[board]
    lo, hi = spec["cpi"]
    mid = 2 / (1 / lo + 1 / hi)
    clock = spec["clock"]
    part = info["sensors"]["imu"]["part"]
    fifo_bus = i2c_read_ms(FIFO_WORD.get(part, 6))
    read_bus = i2c_read_ms(6)

    def fig(insn, add=0.0):
        return (_r(add + _ms(insn, clock, mid)), [_r(add + _ms(insn, clock, lo)), _r(add + _ms(insn, clock, hi))])

    out = {
        "inference_ms": fig(insns[f"classify_{kernels}"]),
        "fifo_sample_ms": fig(insns["fifo_sample"], fifo_bus),
        "sample_wake_ms": fig(insns["loop"], spec["wake_ms"] + read_bus),
        "report_ms": fig(insns["report"]),
    }
    if "boot_runtime_ms" in spec:
        out["boot_ms"] = fig(insns["boot"], spec["boot_runtime_ms"])
    return out


def texts(board: str, insns: dict, kernels: str) -> dict:
    from .. import boards
    info = boards.load(board)
    spec = BOARDS[board]
    lo, hi = spec["cpi"]
    part = info["sensors"]["imu"]["part"]
    n = FIFO_WORD.get(part, 6)
    core = f"the emulated {'Cortex-M0' if spec['arch'] == 'armv6m' else 'Cortex-M4F'} ({spec['arch']})"
    proxy = (" MicroPython's interpreter stands in for CircuitPython's (no CircuitPython on qemu; "
             "docs/emulation.md)." if info.get("firmware") == "circuitpython" else "")
    at = f"x CPI {lo}-{hi} / {spec['clock'] / 1e6:.0f} MHz ({spec['why']})"
    k = lambda x: f"{insns[x] / 1e3:.0f}k instructions"          # noqa: E731
    return {
        "source": (f"DERIVED from instruction counts on {core}, not measured on hardware (tools/bench_mcu.py "
                   f"--write-boards; figure at the harmonic middle of the CPI range, timing.derived has the "
                   f"ranges): inference_ms = the hop's classification (mote.classifier on the demo gesture "
                   f"model, {kernels} kernels) {k('classify_' + kernels)}; sample_wake_ms = wake "
                   f"{spec['wake_ms']} ms (estimate: {spec['wake_why']}) + a 6-byte I2C read at 400 kHz "
                   f"{i2c_read_ms(6):.2f} ms + one loop pass (mote.app._pass with the detector) {k('loop')}; "
                   f"report_ms = one reported hop (features, acc record, frame, ack) {k('report')}; {at}."
                   + proxy),
        "fifo_source": (f"DERIVED from instruction counts on {core}, not measured on hardware: per sample taken "
                        f"from the IMU FIFO in a batch: a {n}-byte I2C read at 400 kHz {i2c_read_ms(n):.2f} ms + "
                        f"mote.app.sample (imu_lsm6.fifo_read, the detector mote.policy.sample, the ring) "
                        f"{k('fifo_sample')} {at}." + proxy),
        **({"boot_source": (f"runtime start {spec['boot_runtime_ms']} ms (estimate: {spec['boot_why']}) + "
                            f"DERIVED from instruction counts on {core}: importing mote.app, App() and loading the "
                            f"demo model {k('boot')} {at} (flash reads through the emulator cost it no "
                            f"time: a lower bound)." + proxy)} if "boot_runtime_ms" in spec else {}),
    }


def write_board(board: str, insns: dict, boards_dir: Path) -> Path:
    """Write the derived figures into boards/<board>.json's timing (currents and everything else kept)."""
    p = Path(boards_dir) / f"{board}.json"
    d = json.loads(p.read_text())
    kernels = (d.get("infer") or {}).get("kernels", "viper32")
    tm = d["timing"]
    figs = derive(board, insns, kernels)
    spec = BOARDS[board]
    for f, (v, _) in figs.items():
        tm[f] = v
    tm.update(texts(board, insns, kernels))
    tm["derived"] = {
        "tool": "tools/bench_mcu.py --write-boards (motekit.emu.timing)",
        "arch": spec["arch"], "clock_mhz": spec["clock"] / 1e6, "cpi": list(spec["cpi"]), "kernels": kernels,
        "insns": {k: insns[k] for k in sorted(insns)},
        "ranges_ms": {f: r for f, (_, r) in figs.items()},
    }
    p.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")
    return p
