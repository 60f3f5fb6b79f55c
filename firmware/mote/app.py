# The application loop: sensor -> window -> features -> telemetry, with the link served in between.
#
# Per sample the loop only reads the sensor into a preallocated ring and advances integers (no
# allocation: tests run it under micropython.heap_lock()). Work that allocates - features,
# CBOR, frames - happens once per hop.
import gc
import sys

from mote import VERSION, config, proto
from mote.hal import native_arch
from mote.compat import print_exception, ticks_add, ticks_diff, ticks_ms
from mote.link import Link
from mote.report import Reporter, acc_pack, ev_pack

RADIO_NAP_MS = 50                        # the loop's longest nap while BLE advertises or is connected


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


def warm_up(names):
    """Import modules once and let them go: their names are interned now, while the heap is young. A module
    first imported hours later (the model engine at an upload's trial) grows the interpreter's name table,
    which takes one large contiguous block a fragmented heap may not have (measured: the sim's trial failed
    with MemoryError there, with 200 KB free). Re-importing later adds no names; dropping them now keeps the
    heap of a board without a model as it was."""
    from mote import store      # its loaded()/forget() let modules go (store is imported by now anyway)
    before = store.loaded()
    for n in names:
        try:
            __import__(n)
        except Exception as e:  # never keep the board from booting over it
            print_exception(e)
    store.forget(before)


def store_caps():
    from mote.store import caps      # upload encodings this port inflates ("deflate")
    return caps()


def _has_radio():
    """The port has a BLE stack: MicroPython's `bluetooth` or CircuitPython's `_bleio`."""
    for name in ("bluetooth", "_bleio"):
        try:
            __import__(name)
            return True
        except ImportError:
            pass
    return False


class App:
    def __init__(self, board, cfg=None):
        self.board = board
        self.cfg = cfg or config.load()
        self.boot = _boot_count()
        self.device = "".join("%02x" % b for b in board.uid)
        mtu = int(board.info.get("link", {}).get("mtu", 512)) if isinstance(board.info.get("link"), dict) else 512
        self.link = Link(board.serial, mtu)
        self.link.hello = self._host_hello     # the hello map (the session/resend: mote.telemetry on_hello)
        self.link.on("info", lambda p: self.hello())
        self.link.on("stats", lambda p: self.stats())
        self.link.on("config.get", lambda p: dict(self.cfg))
        self.link.on("config.set", self.config_set)
        self.link.on("repl", self._repl)
        self.link.on("reset", self._reset)
        self.link.on("ble.pair", self._ble_pair)     # serial only (mote.requests): the pairing window
        self._setup_store(board)
        self.t0 = ticks_ms()
        self.up = 0               # ms since boot, accumulated by uptime_ms()
        self.seq = 0
        self.samples = 0
        self.overruns = 0
        self.sleep_due = False   # a sleep band's deep sleep, waiting for the radio window to end
        self.running = False
        self.loop_errors = 0     # loop passes an OSError ended early (a full or failing flash): counted, not fatal
        self.power = None
        self.reporter = Reporter()
        self._setup_window()
        self._setup_power()

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
        self.hop_moving = False  # the activity detector saw motion during this hop
        self.fifo_n = 0          # > 0: the IMU's FIFO collects the samples, INT1 at this many (board.imu_fifo)
        self.fifo_hz = 0
        if self.power is not None:
            self._apply_rate()
            self._load_model()

    # -- requests ---------------------------------------------------------------------------
    def hello(self):
        return {"proto": proto.VERSION, "id": self.device, "board": self.board.name, "fw": VERSION,
                "mtu": self.link.mtu, "boot": self.boot, "uptime_ms": self.uptime_ms(),
                "impl": sys.implementation.name, "arch": native_arch(),
                "model": self._model(), "model_error": self.clf.error,
                "policy": self.power.policy.name(), "caps": store_caps()}

    def _setup_store(self, board):
        # model store: trial/confirm/rollback and the boot-time hash check run before the link starts
        from mote import store, upload
        warm_up(("mote.infer", "mote.infer_bind", "mote.mtm_check"))
        self.store = store.Store(board.name)
        before = self.store.pointer().get("slot")
        self.store.window = self.cfg["window"]     # a window classifier's trial checks it fits the board's window
        upload.register(self.link, self.store, self._spool_reserve)     # (before boot: stale uploads dropped)
        try:
            self.store.boot()
        except Exception as e:  # never keep the board from booting over its model
            print_exception(e)
        p = self.store.pointer()
        # a rollback at boot (revoked signer, corruption, failed trial) becomes an `ev` once telemetry runs
        self._boot_ev = (before, p.get("note") or "rolled back") if p.get("slot") != before else None

    def _spool_reserve(self):
        """Flash the telemetry spool may still grow into (an upload must leave it free)."""
        tel = getattr(self, "tel", None)
        if tel is None:
            return 0
        sp = tel.sp
        used = len(sp.segs) if sp is not None else 0
        return max(0, tel.max_segs - used) * tel.seg_bytes

    def _model(self):
        try:
            return self.store.active()
        except Exception:
            return None

    def uptime_ms(self):
        # accumulated: ticks_diff alone goes negative after half the tick period (CircuitPython: 2**28 ms,
        # 3.1 days; MicroPython boards: 6.2 days); it is called at least every heartbeat, far more often
        now = ticks_ms()
        self.up += ticks_diff(now, self.t0)
        self.t0 = now
        return self.up

    def stats(self):
        gc.collect()
        s = self.link.stats()
        s["uptime_ms"] = self.uptime_ms()
        s["samples"] = self.samples
        s["overruns"] = self.overruns
        s["telemetry_seq"] = self.tel.seq
        s["mem_free"] = gc.mem_free()
        # compact (stats must fit a 256-byte frame): details in policy.get and infer.status
        c = self.clf
        s["hz"] = self.hz
        s["policy"] = self.power.policy.name()
        s["infer"] = [c.inferences, c.failures, c.lat.p95()]
        s["spool"] = [self.tel.depth(), self.tel.dropped()]
        ble = getattr(self, "ble", None)
        if ble is not None:
            s["ble"] = [ble.port.connects, ble.drops]    # centrals connected, let go after a batch
            # refused by the gate (mote.requests), acks ignored (untrusted link), bonds refused (no window)
            s["sec"] = [self.link.denied + ble.denied, ble.acks_ignored, ble.port.pair_refused]
        if c.error:
            s["model_error"] = c.error[:60]
        if self.fs_errors():
            s["fs_err"] = [self.tel.write_errors, self.loop_errors]   # write-behinds refused, loop passes hit
        return s

    def fs_errors(self):
        """Flash writes that failed since boot (ENOSPC, I/O): the telemetry write-behind's and the loop's."""
        return self.tel.write_errors + self.loop_errors

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
        self.store.window = new["window"]           # the next trial checks a window classifier against it
        self._setup_window()
        return new

    def _ble_pair(self, params):
        ble = getattr(self, "ble", None)
        if ble is None:
            raise ValueError("this board has no BLE radio running")
        return ble.port.pair(params)

    def _repl(self, params):
        self.link.after = self.stop
        return "leaving the link for the REPL"

    def _reset(self, params):
        self.link.after = self._reset_now
        return "resetting"

    def stop(self):
        self.running = False

    def _reset_now(self):
        self.tel.flush()                          # unacked telemetry in RAM would not survive the reset
        self.board.reset()

    def _start_ble(self):
        # the BLE link (mote.ble: NUS peripheral) beside serial, when the board has a radio
        self.ble = None
        if not _has_radio():
            return None                               # no radio: mote.ble's code never takes heap (~6 KB)
        try:
            from mote import ble
            self.ble = ble.start(self.board, self.device, self.link, self._ble_state,
                                 lambda: self.power.policy if self.power is not None else None)
        except Exception as e:  # a radio problem never stops the board
            print_exception(e)
        if self.ble is not None:
            self.link.mirrors.append(self.ble)      # logs also go to a connected BLE host (telemetry: self.tel)
        return self.ble

    def _ble_state(self):
        """What the BLE advertisement shows: (SoC % or -1, on USB, a model active, records waiting)."""
        s = self.power
        try:
            model = bool(self._model())
        except Exception:
            model = False
        return (s.soc if s is not None else -1, bool(s is not None and s.usb), model, self.tel.depth())

    # -- power policy, telemetry, inference (mote.power / mote.telemetry / mote.classifier) ------
    def _setup_power(self):
        from mote.classifier import Classifier
        from mote.power import Power
        from mote.telemetry import Telemetry
        board = self.board
        kinds = (board.info.get("link") or {}).get("kinds") or ["usb-cdc"]
        self.power = Power(board)
        fs_bytes = int((board.info.get("flash") or {}).get("fs_bytes", 0) or 0)
        segs = max(8, min(64, fs_bytes // 8 // 4096))          # the spool: 1/8 of the filesystem, 32..256 KiB
        self.tel = Telemetry(self.link, self.boot, self.uptime_ms, usb_link=kinds[0] == "usb-cdc", max_segs=segs)
        self.clf = Classifier(self.store)
        self.next_hb = ticks_add(ticks_ms(), self.power.policy.hb_ms)
        self.link.on("policy.get", lambda p: self.power.get())
        self.link.on("policy.set", self._policy_set)
        self.link.on("infer.status", lambda p: dict(self.clf.status(), telemetry=self.tel.stats()))
        # the active model may change; upload.begin verifies a signature (the verifier's ~20 KB and the running
        # model's do not fit a 192 KiB heap's margin together: the model is let go and loaded again after)
        for name in ("upload.begin", "upload.commit", "store.rollback", "store.confirm"):
            self.link.on(name, self._reloading(self.link.methods[name]))
        self.power.tick(ticks_ms(), True)
        self.power.resume(ticks_ms())           # after a deep sleep behind the IMU: band/SoC, INT1 -> probe
        self._apply_rate()
        self._load_model()
        if self._boot_ev is not None:
            self.event("model", self._boot_ev[0], self._boot_ev[1][:60])
        from mote import power as _power
        for what, why in (("config", config.LOAD_ERROR), ("policy", _power.LOAD_ERROR),
                          ("policy", _power.BOARD_ERROR)):
            if why:                             # a stored file that did not load: the default runs, said once
                self.event(what, "stored", ("default: " + why)[:60])

    def _reloading(self, fn):
        def call(p):
            # the request may load a model (a commit's trial): the running model and the telemetry RAM window
            # make room first (a 192 KB board cannot hold two models and the engine at once); reloaded after
            self.clf.unload()
            try:
                self.tel.flush()
                gc.collect()
                return fn(p)
            finally:
                self._load_model()          # also after a refusal: the board goes on classifying
        return call

    def _load_model(self):
        msg = self.clf.load(self.win_n)
        m = self.clf.model
        self.power.set_labels(getattr(m, "labels", None) if m is not None else None)    # which labels are events
        if msg is not None and msg.startswith("load failed"):
            self.event("model", self.clf.name, msg)

    def _host_hello(self):
        return self.hello()

    def _policy_set(self, params):
        r = self.power.set(params)
        now = ticks_ms()
        self.next_hb = ticks_add(now, self.power.policy.hb_ms)
        self._power_tick(now)
        r["state"] = self.power.state()
        return r

    def _apply_rate(self):
        hz = self.power.hz(self.cfg["sample_hz"]) if self.power.policy.band >= 0 else self.cfg["sample_hz"]
        self.hz = hz                              # USB power (the usb row) -> full rate: config sample_hz
        self.reporter.set_mode(self.power.policy.report())
        if hz:
            self.period_ms = 1000 // hz
        self.board_rate(hz)

    def board_rate(self, hz):
        fifo = getattr(self.board, "imu_fifo", None)
        if fifo is not None:
            if hz and self.fifo_n == self.hop and self.fifo_hz == hz:
                return                            # already there (re-arming would empty the FIFO)
            try:                                  # the IMU does the waiting: one wake per hop (mote.imu_lsm6)
                fifo(hz, self.hop)
                self.fifo_hz = hz
                self.fifo_n = self.hop if hz else 0
                return
            except (OSError, ValueError) as e:    # a FIFO that does not answer: sample by sample instead
                self.fifo_n = 0
                self.board.imu_fifo = None
                print_exception(e)
        set_rate = getattr(self.board.accel, "set_rate", None)
        if set_rate is not None and hz:
            set_rate(hz)                          # a real IMU follows (ODR); the sim generator ignores it

    def event(self, what, old, new):
        self.emit("ev", ev_pack(what, old, new, self.power.soc, self.hz))

    def _power_tick(self, now):
        s = self.power
        ch = s.tick(now)
        self.tel.poll(now, s.usb)
        if ch is not None or s.changed:
            s.changed = False
            old = self.hz
            self._apply_rate()
            if ch is not None and ch[0] is not None:
                self.event("band", ch[0], ch[1])
            elif self.hz != old and not s.policy.screening():
                self.event("rate", old, self.hz)   # a burst started / ended (screening: the acc records say it)
            if self.hz != old:
                self.filled = 0                   # a window at one rate only
                self.since_hop = 0
                self.hop_moving = False
                self.reporter.reset()             # a new burst (or its end): its first hop is reported
        if ticks_diff(now, self.next_hb) >= 0:
            self.next_hb = ticks_add(now, s.policy.hb_ms)
            self.emit("hb", self.heartbeat())
            if s.policy.mode == 2:                # MODE_SLEEP: deep sleep with a periodic wake
                self.sleep_due = True             # once the radio window has taken the heartbeat
        if self.sleep_due:
            if s.policy.mode != 2:
                self.sleep_due = False            # the band changed (e.g. USB power) before it slept
            elif not self._radio_busy():
                self.sleep_due = False
                self._deepsleep(s.policy.wake_ms())

    def heartbeat(self):
        from mote import heartbeat
        s = self.power
        c = self.clf
        p = s.policy
        return heartbeat.pack(s.mv, s.soc, s.source(), p.band, p.burst, self.hz, self.boot,
                              self.uptime_ms() // 1000, c.inferences, c.failures, c.lat.p95(), gc.mem_free(),
                              self.tel.depth(), self.tel.dropped(), self.fs_errors() > 0)

    def _wait(self, ms):
        # light sleep between samples only when no host link must be kept (HAL: board.lightsleep)
        light = getattr(self.board, "lightsleep", None)
        ble = getattr(self, "ble", None)
        if ble is not None and (getattr(ble.port, "conn", None) is not None or
                                (getattr(ble.port, "advertising", False) and not self._sleep_keeps_ble())):
            light = None                          # lightsleep drops a BLE connection (ESP32, rp2: docs/power.md)
        if light is not None and not self.tel.present and ms >= 5 and self.power.policy.radio() != "on":
            light(ms)
        else:
            self.board.serial.wait(ms)

    def nap_ms(self, now):
        """How long the loop may nap with no sampling: the policy's nap, but short while the BLE port advertises
        or holds a central (a batch window: the central is served and the window ends on time)."""
        nap = self.power.nap_ms(now, self.next_hb)
        return RADIO_NAP_MS if self._radio_busy() and nap > RADIO_NAP_MS else nap

    def _radio_busy(self):
        """The BLE port advertises (a batch window) or holds a central: a deep sleep now would cut it."""
        ble = getattr(self, "ble", None)
        return ble is not None and (getattr(ble.port, "conn", None) is not None or
                                    bool(getattr(ble.port, "advertising", False)))

    def _sleep_keeps_ble(self):
        """Board file sleep.keeps_link.ble: BLE (advertising too) survives lightsleep. False unless it says so."""
        try:
            return bool(self.board.info["sleep"]["keeps_link"]["ble"])
        except (KeyError, TypeError):
            return False

    def _deepsleep(self, ms):
        deep = getattr(self.board, "deepsleep", None)
        if deep is not None and not self.tel.present:
            self.tel.flush()                      # unacked telemetry in RAM would not survive the reset
            deep(ms)                              # does not return on a real board (wakes through reset)

    # -- the loop ---------------------------------------------------------------------------
    def sample(self, t=-1):
        """One sensor sample into the ring (t >= 0: taken from the IMU's FIFO, sampled at t); True when a hop's
        worth of new samples is ready."""
        i = self.idx
        if t < 0:
            self.board.accel.read_into(self.win, i * 3)
            t = ticks_ms()
        elif not self.board.accel.fifo_read(self.win, i * 3):
            return False
        j = i * 3
        w = self.win
        s = self.power
        s.sample(t, w[j], w[j + 1], w[j + 2])              # activity detector (no allocation)
        if s.policy.c >= 3:                                        # policy.moving(), without the call
            self.hop_moving = True
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

    def drain(self, now):
        """The FIFO's samples (as many as its count says, at most a window) through sample(), stamped back from
        now at the sampling period; a hop's worth -> telemetry()."""
        n = self.board.accel.fifo_count()
        if n > self.win_n:
            n = self.win_n
        per = self.period_ms
        t = ticks_add(now, -(n - 1) * per) if n else now
        while n > 0:
            if self.sample(t):
                self.telemetry()
            t = ticks_add(t, per)
            n -= 1

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
        """One hop: classify, then report it - every hop ("window") or a changed decision ("change")."""
        moving = self.hop_moving
        self.hop_moving = False
        cls = None
        if self.clf.model is not None and self.power.infer() and self.power.worth(self.win, self.win_n):
            cls = self.clf.run(self.win, self.idx)             # label, conf, lat_ms (or err)
        rep = self.reporter
        label = None
        conf = 0.0
        if cls:
            label = cls[0].get(proto.SENML_VS)
            conf = cls[1].get(proto.SENML_V, 0.0) if len(cls) > 1 else 0.0
        now = ticks_ms()
        moving, label, send = self.power.hop(now, moving, label, cls is not None, conf)  # screening: events only
        if not send or not rep.hop(now, moving, label):
            return
        held = rep.take_held() if rep.change else 0
        self.emit("acc", acc_pack(self.features(), cls, rep.change, moving, held))

    def emit(self, kind, pack):
        self.tel.emit(kind, pack)
        self.seq = self.tel.seq

    def run(self):
        board = self.board
        link = self.link
        serial = board.serial
        serial.begin()
        self.running = True
        ble = self._start_ble()
        if ble is not None:
            self.tel.add_link(ble)               # its own host session (resend on hello); presence too
        try:
            link.send(proto.T_HELLO, self.hello())
            nxt = ticks_ms()
            while self.running and not link.broken:
                try:
                    nxt = self._pass(nxt, link, ble)
                except OSError:
                    self.loop_errors += 1        # ENOSPC / a flash error in a write (spool, store, ...): the
                    nxt = ticks_add(ticks_ms(), self.period_ms)     # pass is lost, the board keeps running
        finally:
            self.tel.flush()                     # unacked telemetry in RAM goes to flash
            serial.end()
        return "break" if link.broken else "stopped"

    def _pass(self, nxt, link, ble):
        """One pass of the loop: wait for the next sample, serve the links, power policy, sample. -> next tick."""
        wait = ticks_diff(nxt, ticks_ms())
        if wait > 0:
            self._wait(wait)
        link.poll()
        if ble is not None:
            ble.poll()
        now = ticks_ms()
        hz0 = self.hz
        self._power_tick(now)
        if self.hz == 0:                 # heartbeat-only / sleep band / quiet behind the IMU: no sampling
            deep = self.power.deep_ms(now, self.next_hb)
            if deep and not self.tel.present and getattr(self, "ble", None) is None:
                self.tel.flush()         # deep sleep is a reset: RAM telemetry to flash, state to sleep memory
                self.power.save()
                self.board.deepsleep_imu(deep)     # wakes through a reset on INT1 or the heartbeat timer
            return ticks_add(now, self.nap_ms(now))   # armed: INT1 ends the nap
        if hz0 == 0:                     # sampling resumes (e.g. the IMU's wake-up ended the nap): now
            nxt = now
        if ticks_diff(now, nxt) >= 0 and self.fifo_n:
            self.drain(now)              # one wake per hop: the FIFO's watermark (INT1 ends the nap)
            nxt = ticks_add(now, self.fifo_n * self.period_ms)
        elif ticks_diff(now, nxt) >= 0:
            if self.sample():
                self.telemetry()
            nxt = ticks_add(nxt, self.period_ms)
            if ticks_diff(now, nxt) > 4 * self.period_ms:
                self.overruns += 1       # fell behind (e.g. a long request): resync, don't burst
                nxt = now
        return nxt


def main():
    from mote import hal
    board = hal.load()
    app = App(board)
    why = app.run()
    print("motekit: link stopped (%s); this is the REPL. Soft reset (Ctrl-D) restarts the firmware." % why)
