# The application's classifier: the model store's active model, loaded once (boot, after a commit or a
# rollback), run on the app's sample ring once per hop.
#
# The app's window is a ring (`idx` = the next write position = the oldest sample); the model wants the
# samples in time order, so run() unrolls the ring into a preallocated array (two slice copies per hop,
# nothing per sample). A model that fails to load or run never stops the board: the error is kept for
# hello / stats and reported once as an `ev` record by the app. Right after loading, one inference on an
# input of zero points proves the model runs on this board; the store then stops counting boots against it
# (a model that crashes the interpreter is rolled back after mote.store.MAX_TRIES such boots). A model
# signed as not a window classifier ("window": false) is loaded and proven but not fed the window.
from mote.compat import print_exception
from mote.heartbeat import Latency
from mote import proto


def records(label, conf, us):
    """A classification as SenML records (what the `acc` record carries)."""
    return [{proto.SENML_N: "label", proto.SENML_VS: str(label)},
            {proto.SENML_N: "conf", proto.SENML_V: round(conf, 3)},
            {proto.SENML_N: "lat_ms", proto.SENML_V: round(us / 1000, 2)}]


class Classifier:
    def __init__(self, store):
        self.store = store
        self.model = None
        self.error = None         # why the active model is not running (load failure, window mismatch)
        self.name = None
        self.inferences = 0
        self.failures = 0
        self.lat = Latency()
        self.buf = None
        self.win_n = 0
        self.engine = ()          # the modules loading the running model imported (unload() drops them)

    def load(self, win_n):
        """(Re)load the store's active model for a window of win_n samples. Returns an event text or None."""
        self.unload()
        self.error = None
        self.name = None
        self.win_n = win_n
        try:
            act = self.store.active()
        except Exception:
            act = None
        if not act or act.get("slot") is None:
            return None
        self.name = act.get("name")
        import gc
        from mote.store import forget, load_model, loaded
        gc.collect()
        before = loaded()
        m = None
        try:
            m = load_model(self.store.path(act["slot"], "bin"))      # the validator, then the engine (not both in RAM)
            pre = m.pre or {}
            n = pre.get("n")
            self._probe(m)
            if n is not None and n != win_n and act.get("window") is not False:
                raise ValueError("model wants %d-sample windows, config window is %d" % (n, win_n))
            if act.get("window") is False:
                m.close()
                return "loaded %s (not a window classifier: not run on the window)" % self.name
            self.model = m
            self.engine = loaded() - before
        except Exception as e:  # never stop the board over its model
            print_exception(e)
            self.error = "%s: %s" % (type(e).__name__, e)
            return "load failed: " + self.error
        finally:
            if self.model is None:          # nothing runs it: its file closed, the engine imported for it gone
                close = getattr(m, "close", None)
                if close is not None:
                    close()                 # (a model streaming its weights keeps its slot file open)
                m = close = None
                forget(before)
        from array import array
        if self.buf is None or len(self.buf) != 3 * win_n:
            self.buf = array("h", bytes(6 * win_n))
        return "loaded " + str(self.name)

    def unload(self):
        """Let the running model go, and the engine imported for it (a commit's trial loads its own: a 192 KiB
        board cannot hold two models, the engine and the verifier at once)."""
        m = self.model
        self.model = None
        close = getattr(m, "close", None)
        if close is not None:
            try:
                close()                   # (a model that streams its weights keeps its slot file open)
            except Exception:
                pass
        m = close = None
        names = self.engine
        self.engine = ()
        if names:
            from mote.store import drop
            drop(names)

    def _probe(self, m):
        """One inference on zero points: the model runs here; the store stops counting boots against it."""
        args = []
        for i in range(len(m._in)):
            d = m.inputs[i] if i < len(m.inputs) else {}
            args.append(bytes([d.get("zp", 0) & 255]) * len(m._in[i]))
        m.run(*args)
        proven = getattr(self.store, "proven", None)
        if proven is not None:
            try:
                proven()
            except OSError:
                pass

    def run(self, win, idx):
        """Classify the ring `win` (oldest sample at idx). -> SenML records [label, conf, lat_ms] or None."""
        m = self.model
        if m is None:
            return None
        b = self.buf
        k = 3 * idx
        n = len(win)
        mb = memoryview(b)
        mw = memoryview(win)
        mb[0:n - k] = mw[k:n]              # oldest .. end of the ring
        mb[n - k:n] = mw[0:k]              # start of the ring .. newest
        try:
            label, conf = m.classify(b)
        except Exception as e:
            self.failures += 1
            if self.error is None:
                self.error = "%s: %s" % (type(e).__name__, e)
            return [{proto.SENML_N: "err", proto.SENML_VS: self.error}]
        self.inferences += 1
        us = m.last_us
        self.lat.add(us // 1000)
        return records(label, conf, us)

    def status(self):
        return {"model": self.name, "running": self.model is not None, "error": self.error,
                "inferences": self.inferences, "infer_failures": self.failures, "p95_ms": self.lat.p95()}
