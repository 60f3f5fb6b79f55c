# Cheap motion features of one window, for screening before (and beside) the classifier (mote.policy
# `envelope`). Integer-only and allocation-free per sample; two passes over the app's window (an array('h') of
# n interleaved x, y, z samples in counts; the order of the samples does not matter).
#
#   lin    mg   linear acceleration along gravity: the mean absolute deviation of |a|^2 over the window, as the
#               change of |a| it stands for (|a|^2 = 1 g^2 + 2 g d|a| near 1 g). Turning the wrist rotates the
#               gravity vector and leaves |a| alone; a squat, a lunge or a jump moves the body and changes it.
#   share  %    lin / motion: how much of the window's motion is linear acceleration rather than rotation.
#   motion mg   the per-axis mean absolute deviations added up (all motion, rotation included).
#
# A wearer moving around (not exercising) mostly turns the sensor: high motion, low share; the exercise
# recordings move the body (docs/power.md: per-label envelopes calibrated on the training recordings).
#
# Bounds (32-bit ports, small ints up to 2**30): counts are scaled to ~512/g before squaring, so |a|^2 < 3.2e6
# and its sums over at most MAX_N samples stay < 2**30.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MAX_N = const(256)
LIN = const(0)
SHARE = const(1)
MOTION = const(2)
NAMES = ("lin", "share", "motion")


def shift_for(cpg):
    """The right shift that brings `cpg` counts per g to about 512 per g (+-2 g at 16 bit: 5)."""
    sh = 0
    while (cpg >> sh) > 768:
        sh += 1
    return sh


def features(win, n, cpg, out):
    """Fill out[0:3] with (lin mg, share %, motion mg) of the n samples in win; returns out. Raises ValueError
    when n or win do not fit (checked before the loops touch win)."""
    if not 1 <= n <= MAX_N or len(win) < 3 * n or len(out) < 3 or cpg < 64:
        raise ValueError("screen: window of 1..%d samples, counts_per_g >= 64" % MAX_N)
    sh = shift_for(cpg)
    g = cpg >> sh                       # counts per g after the shift
    sx = 0
    sy = 0
    sz = 0
    sm = 0
    for i in range(0, 3 * n, 3):
        x = win[i]
        y = win[i + 1]
        z = win[i + 2]
        sx += x
        sy += y
        sz += z
        x >>= sh
        y >>= sh
        z >>= sh
        sm += x * x + y * y + z * z
    mx = sx // n
    my = sy // n
    mz = sz // n
    mm = sm // n
    dx = 0
    dy = 0
    dz = 0
    dm = 0
    for i in range(0, 3 * n, 3):
        x = win[i]
        y = win[i + 1]
        z = win[i + 2]
        dx += x - mx if x > mx else mx - x
        dy += y - my if y > my else my - y
        dz += z - mz if z > mz else mz - z
        x >>= sh
        y >>= sh
        z >>= sh
        m = x * x + y * y + z * z - mm
        dm += m if m > 0 else -m
    # |a|^2 deviation d -> |a| deviation d / (2 g) in g: mg = d * 1000 / (2 g^2) = d * 125 / (g^2 / 4)
    lin = (dm // n) * 125 // ((g * g) >> 2)
    motion = ((dx + dy + dz) // n) * 1000 // cpg
    out[LIN] = lin
    out[MOTION] = motion
    out[SHARE] = lin * 100 // motion if motion > 0 else 0
    return out


ENV_MAX = const(100000)


def check_envelope(env, max_labels=16):
    """A policy's `envelope`: {label: [lin_mg, share_pct]}: lin 0..ENV_MAX mg, share 0..100 %, at most max_labels
    labels (mote.policy.check calls it only for a policy that has one). ValueError names the problem."""
    if not isinstance(env, dict) or len(env) > max_labels:
        raise ValueError("envelope must be a map of at most %d labels to [lin_mg, share_pct] (or null)" % max_labels)
    for k in env:
        v = env[k]
        if not isinstance(k, str) or not 0 < len(k) <= 32:
            raise ValueError("envelope: each label is a string of 1..32 characters")
        if not isinstance(v, list) or len(v) != 2:
            raise ValueError("envelope %s: a list [lin_mg, share_pct] (the least linear acceleration and its share)" % k)
        for x, top in ((v[0], ENV_MAX), (v[1], 100)):
            if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= top:
                raise ValueError("envelope %s: lin_mg 0..%d, share_pct 0..100 (integers)" % (k, ENV_MAX))


def gate(p, win, n):
    """mote.policy.Policy.gate's work: the window's features into p.feat; True when some event label's envelope
    fits them."""
    if p.feat is None:
        p.feat = [0, 0, 0]
    features(win, n if n <= MAX_N else MAX_N, p.cpg, p.feat)
    for e in p.events:
        if p.fits(e):
            return True
    return False
