# Device configuration: defaults, overridden by /config.json (written by the host through config.set).

PATH = "/config.json"
DEFAULTS = {
    "sample_hz": 50,      # accelerometer output data rate
    "window": 50,         # samples per classification/feature window
    "hop": 25,            # samples between windows (telemetry record per hop)
}
LIMITS = {"sample_hz": (1, 400), "window": (4, 512), "hop": (1, 512)}


LOAD_ERROR = None         # why the stored config was not used (the app reports it as an `ev` record)


def load():
    global LOAD_ERROR
    from mote.fs import load_json
    cfg = dict(DEFAULTS)
    stored, LOAD_ERROR = load_json(PATH, {})
    if not isinstance(stored, dict):
        stored = {}
        LOAD_ERROR = LOAD_ERROR or "stored config is not a map"
    for k in DEFAULTS:
        if k in stored:
            try:
                cfg[k] = check(k, stored[k])
            except ValueError as e:
                LOAD_ERROR = str(e)   # a bad stored value never stops the board: keep the default
    if cfg["hop"] > cfg["window"]:
        cfg["hop"] = cfg["window"]
        LOAD_ERROR = "stored hop exceeds the window"
    return cfg


def check(key, value):
    if key not in DEFAULTS:
        raise ValueError("unknown config key " + str(key))
    lo, hi = LIMITS[key]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError("%s must be an integer in %d..%d" % (key, lo, hi))
    return value


def save(cfg):
    import json
    from mote import fs
    fs.write_atomic(PATH, json.dumps(cfg).encode())
