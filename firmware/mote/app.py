# The application loop: sensor -> window -> features -> telemetry, with the link served in between.
#
# Per sample the loop only reads the sensor into a preallocated ring and advances integers (no
# allocation: tests run it under micropython.heap_lock()). Work that allocates - features,
# CBOR, frames - happens once per hop.
import gc
import sys
import time

from mote import VERSION, config, proto
from mote.link import Link

MG_PER_COUNT_NUM = 9.80665 / 16384     # counts -> m/s2


def _boot_count():
    try:
        with open("/boot") as f:
            n = int(f.read()) + 1
    except (OSError, ValueError):
        n = 1
    try:
        with open("/boot", "w") as f:
            f.write(str(n))
    except OSError:
        pass
    return n


class App:
    def __init__(self, board, cfg=None):
        self.board = board
        self.cfg = cfg or config.load()
        self.boot = _boot_count()
        self.device = "".join("%02x" % b for b in board.uid)
        mtu = int(board.info.get("link", {}).get("mtu", 512)) if isinstance(board.info.get("link"), dict) else 512
        self.link = Link(board.serial, mtu)
        self.link.hello = self.hello
        self.link.on("info", lambda p: self.hello())
        self.link.on("stats", lambda p: self.stats())
        self.link.on("config.get", lambda p: dict(self.cfg))
        self.link.on("config.set", self.config_set)
        self.link.on("repl", self._repl)
        self.link.on("reset", self._reset)
        self._setup_store(board)
        self.t0 = time.ticks_ms()
        self.seq = 0
        self.samples = 0
        self.overruns = 0
        self.running = False
        self._setup_window()

    def _setup_window(self):
        from array import array
        c = self.cfg
        self.win_n = c["window"]
        self.hop = c["hop"]
        self.period_ms = 1000 // c["sample_hz"]
        self.win = array("h", [0] * (3 * self.win_n))      # ring of x,y,z int16 samples
        self.idx = 0             # next write position (sample index in the ring)
        self.filled = 0
        self.since_hop = 0

    # -- requests ---------------------------------------------------------------------------
    def hello(self):
        return {"proto": proto.VERSION, "id": self.device, "board": self.board.name, "fw": VERSION,
                "mtu": self.link.mtu, "boot": self.boot, "uptime_ms": self.uptime_ms(),
                "impl": sys.implementation.name, "model": self._model()}

    def _setup_store(self, board):
        # model store: trial/confirm/rollback and the boot-time hash check run before the link starts
        from mote import store, upload
        self.store = store.Store(board.name)
        try:
            self.store.boot()
        except Exception as e:  # never keep the board from booting over its model
            sys.print_exception(e)
        upload.register(self.link, self.store)

    def _model(self):
        try:
            return self.store.active()
        except Exception:
            return None

    def uptime_ms(self):
        return time.ticks_diff(time.ticks_ms(), self.t0)

    def stats(self):
        gc.collect()
        s = self.link.stats()
        s["uptime_ms"] = self.uptime_ms()
        s["samples"] = self.samples
        s["overruns"] = self.overruns
        s["telemetry_seq"] = self.seq
        s["mem_free"] = gc.mem_free()
        return s

    def config_set(self, params):
        if not isinstance(params, dict) or not params:
            raise ValueError("config.set takes a map of key: value")
        new = dict(self.cfg)
        for k, v in params.items():
            new[k] = config.check(k, v)
        if new["hop"] > new["window"]:
            raise ValueError("hop must not exceed window")
        config.save(new)
        self.cfg = new
        self._setup_window()
        return new

    def _repl(self, params):
        self.link.after = self.stop
        return "leaving the link for the REPL"

    def _reset(self, params):
        self.link.after = self.board.reset
        return "resetting"

    def stop(self):
        self.running = False

    # -- the loop ---------------------------------------------------------------------------
    def sample(self):
        """One sensor sample into the ring; True when a hop's worth of new samples is ready."""
        i = self.idx
        self.board.accel.read_into(self.win, i * 3)
        i += 1
        self.idx = 0 if i == self.win_n else i
        if self.filled < self.win_n:
            self.filled += 1
        self.samples += 1
        self.since_hop += 1
        if self.since_hop >= self.hop and self.filled == self.win_n:
            self.since_hop = 0
            return True
        return False

    def features(self):
        """Per-axis mean and standard deviation over the window, in m/s2."""
        w = self.win
        n = self.win_n
        out = []
        for ax in range(3):
            s = 0
            ss = 0
            for k in range(ax, 3 * n, 3):
                v = w[k]
                s += v
                ss += v * v
            mean = s / n
            var = ss / n - mean * mean
            out.append(mean)
            out.append(var ** 0.5 if var > 0 else 0.0)
        return out

    def telemetry(self):
        f = self.features()
        k = MG_PER_COUNT_NUM
        names = ("ax", "sx", "ay", "sy", "az", "sz")
        pack = []
        for j in range(6):
            pack.append({proto.SENML_N: names[j], proto.SENML_V: round(f[j] * k, 3)})
        pack[0][proto.SENML_BU] = "m/s2"     # base unit once, not per record
        self.emit("acc", pack)

    def emit(self, kind, pack):
        self.seq += 1
        self.link.send(proto.T_TELEMETRY, [self.boot, self.seq, self.uptime_ms(), kind, pack])

    def run(self):
        board = self.board
        link = self.link
        serial = board.serial
        serial.begin()
        self.running = True
        try:
            link.send(proto.T_HELLO, self.hello())
            nxt = time.ticks_ms()
            while self.running and not link.broken:
                wait = time.ticks_diff(nxt, time.ticks_ms())
                if wait > 0:
                    serial.wait(wait)
                link.poll()
                now = time.ticks_ms()
                if time.ticks_diff(now, nxt) >= 0:
                    if self.sample():
                        self.telemetry()
                    nxt = time.ticks_add(nxt, self.period_ms)
                    if time.ticks_diff(now, nxt) > 4 * self.period_ms:
                        self.overruns += 1       # fell behind (e.g. a long request): resync, don't burst
                        nxt = now
        finally:
            serial.end()
        return "break" if link.broken else "stopped"


def main():
    from mote import hal
    board = hal.load()
    app = App(board)
    why = app.run()
    print("motekit: link stopped (%s); this is the REPL. Soft reset (Ctrl-D) restarts the firmware." % why)
