# The device half of tools/fuzz_models.py: runs under `micropython` with the firmware on MICROPYPATH.
#
#   micropython fuzz_mtm_device.py SEED FIRST COUNT KERNELS TMPDIR MODEL.mtm ...
#
# Structure-aware mutations of real models' headers: decode the CBOR header (mote.cbor), change 1-3 of its
# integers (sizes, offsets, ids, op parameters) to boundary and random values, now and then swap a typecode,
# drop a parameter, duplicate an op or damage the container (header length, truncation); write the file,
# load it with mote.infer.Model and run it on a zero input. Case i is a pure function of (SEED, i), so a
# crash is replayed with FIRST = i, COUNT = 1. Prints "case I" before each case (the host sees which case
# killed the interpreter), then "ok I" (loaded and ran), "err I ModelError: ..." (refused), or
# "BAD I Type: ..." (any other exception: a defect). Ends with "done N".
import sys

from mote import cbor
from mote.infer import Model, ModelError

MASK = 0xFFFFFFFF


class Rng:
    def __init__(self, seed):
        self.s = (seed * 2654435761 + 0x9E3779B9) & MASK or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & MASK
        s ^= s >> 17
        s ^= (s << 5) & MASK
        self.s = s
        return s

    def below(self, n):
        return self.next() % n if n > 0 else 0


def leaves(obj, path, out):
    """Paths to every int (and typecode/kind string) in the header."""
    if isinstance(obj, dict):
        for k in obj:
            leaves(obj[k], path + [k], out)
    elif isinstance(obj, list):
        for i in range(len(obj)):
            leaves(obj[i], path + [i], out)
    elif isinstance(obj, int) and not isinstance(obj, bool):
        out.append(path)
    elif isinstance(obj, str) and obj in ("b", "i"):
        out.append(path)


def get_parent(h, path):
    o = h
    for k in path[:-1]:
        o = o[k]
    return o


SPECIAL = (0, 1, -1, 2, 3, 7, 8, 15, 16, 127, 128, 255, 256, 1023, 1024, 4095, 32767, 32768, 65535, 65536,
           (1 << 30) - 1, 1 << 30, (1 << 31) - 1, 1 << 31, -(1 << 31), 1 << 40, 10 ** 12)


def new_value(r, v):
    if isinstance(v, str):
        return "i" if v == "b" else "b"
    k = r.below(8)
    if k == 0:
        return SPECIAL[r.below(len(SPECIAL))]
    if k == 1:
        return v + 1
    if k == 2:
        return v - 1
    if k == 3:
        return v * 2 + r.below(3)
    if k == 4:
        return v // 2
    if k == 5:
        return v + r.below(64) - 32
    if k == 6:
        return -v
    return r.below(max(4, abs(v) * 4 + 1))


def mutate(r, h):
    for _ in range(1 + r.below(3)):
        paths = []
        leaves(h, [], paths)
        k = r.below(20)
        if k == 0 and h.get("ops"):                     # drop a parameter of an op
            p = h["ops"][r.below(len(h["ops"]))][1]
            if p:
                keys = list(p)
                del p[keys[r.below(len(keys))]]
        elif k == 1 and h.get("ops"):                   # an op twice
            ops = h["ops"]
            ops.insert(r.below(len(ops) + 1), ops[r.below(len(ops))])
        elif k == 2 and h.get("ops"):                   # another op's kind
            ops = h["ops"]
            ops[r.below(len(ops))][0] = ops[r.below(len(ops))][0]
        elif paths:
            path = paths[r.below(len(paths))]
            parent = get_parent(h, path)
            parent[path[-1]] = new_value(r, parent[path[-1]])
    return h


def build(hbytes, data, r, damage):
    n = len(hbytes)
    start = (8 + n + 15) // 16 * 16
    hl = n
    if damage == 1:
        hl = new_value(r, n) & MASK
    out = b"MTM1" + hl.to_bytes(4, "little") + hbytes + bytes(start - 8 - n) + data
    if damage == 2:
        out = out[:r.below(len(out))]
    return out


def main():
    a = sys.argv[1:]
    seed, first, count, kernels, tmp = int(a[0]), int(a[1]), int(a[2]), a[3], a[4]
    models = []
    for path in a[5:]:
        with open(path, "rb") as f:
            raw = f.read()
        n = int.from_bytes(raw[4:8], "little")
        start = (8 + n + 15) // 16 * 16
        models.append((raw[8:8 + n], raw[start:]))
    target = tmp + "/case.mtm"
    done = 0
    for i in range(first, first + count):
        r = Rng(seed * 1000003 + i)
        hb, data = models[r.below(len(models))]
        damage = r.below(16)
        h = mutate(r, cbor.loads(hb))
        try:
            blob = build(cbor.dumps(h), data, r, damage)
        except Exception:
            blob = build(hb, data, r, 2)
        with open(target, "wb") as f:
            f.write(blob)
        print("case", i)
        try:
            m = Model(target, kernels=kernels if kernels != "mix" else ("viper", "pure", "viper32")[i % 3])
            m.run(*[bytes(len(v)) for v in m._in])
            print("ok", i)
        except ModelError as e:
            print("err", i, "ModelError:", e)
        except Exception as e:
            print("BAD", i, type(e).__name__ + ":", e)
        m = None
        done += 1
    print("done", done)


main()
