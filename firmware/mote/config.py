# Device configuration: defaults, overridden by /config.json (written by the host through config.set).
from mote.hal import read_json

PATH = "/config.json"
DEFAULTS = {
    "sample_hz": 50,      # accelerometer output data rate
    "window": 50,         # samples per classification/feature window
    "hop": 25,            # samples between windows (telemetry record per hop)
}
LIMITS = {"sample_hz": (1, 400), "window": (4, 512), "hop": (1, 512)}


def load():
    cfg = dict(DEFAULTS)
    stored = read_json(PATH, {})
    if isinstance(stored, dict):
        for k in DEFAULTS:
            if k in stored:
                try:
                    cfg[k] = check(k, stored[k])
                except ValueError:
                    pass   # a bad stored value never stops the board: keep the default
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
