# mote.infer_stream: what only large models need. Weights kept in the model file and read per layer at every
# run (Model(weights="stream")): the buffer sizes, and each streamed FC/CONV/DW layer bound as (read its
# weights, run it), a layer larger than `chunk` bytes as groups of output channels; and buffers above
# BIG_BUFFERS allocated in one piece without a same-size temporary. Imported only by a model that
# streams or has such buffers, so that the others pay no RAM for this code. Results are bit-identical to
# weights in RAM.
from array import array

from mote.infer import ModelError, _b, _fill

# weights="auto": layer weights are loaded into RAM when they, the activations and this margin take at most
# half of the free heap at load time (gc.mem_free()); otherwise they stay in the file, streamed per layer
RAM_MARGIN = 16384
# buffers (activations, streamed-weight and group buffers) above this many bytes are allocated on a heap freed of
# the decoded header (decoded again); mote.infer imports this module for models above either (its literals)
BIG_BUFFERS = 16384
# the op kinds whose weights `w` may stay in the file (the weight layers; motekit.model.ops: Kind.streamed)
STREAMED = ("FC", "CONV", "DW")
# streamed layers whose weights exceed this many bytes run in groups of output channels (bounded buffer)
STREAM_CHUNK = 8192


def alloc(code, nbytes, zero=True):
    """An array of nbytes allocated in one piece, without a same-size temporary (array(code, bytes(n)) needs
    2n at once, which a fragmented 192 KB heap often cannot give): MicroPython sizes an array built from a
    range() by its length and stores the (truncated) values; zeroed afterwards by 1 KiB slices unless the
    caller fills it (readinto)."""
    if code == "i":             # (int32 values: range() fits them on every port)
        return array(code, range(nbytes // 4)) if not zero else array(code, bytes(nbytes))
    if nbytes <= 1024 and zero:
        return array(code, bytes(nbytes))
    try:
        a = array(code, range(nbytes))
    except OverflowError:       # CircuitPython (and CPython) check each value: grow from 1 KiB zero blocks
        a = array(code)         # instead (in place when the heap behind the array is free)
        z = bytes(1024)
        while len(a) + 1024 <= nbytes:
            a.extend(z)
        if len(a) < nbytes:
            a.extend(z[0:nbytes - len(a)])
        return a
    if zero:
        mv = memoryview(a)
        z = bytes(1024)
        i = 0
        while i + 1024 <= nbytes:
            mv[i:i + 1024] = z
            i += 1024
        if i < nbytes:
            mv[i:nbytes] = z[0:nbytes - i]
    return a


class Blobs:
    # the model's constants by blob id, each read from the file when its op is bound and kept only by the plan
    # (each blob belongs to one op: a smaller peak while loading); an entry can be set for the next read (a
    # streamed layer's weights view)
    def __init__(self, f, metas, start):
        self.f = f
        self.metas = metas
        self.start = start
        self.got = {}

    def __getitem__(self, i):
        a = self.got.pop(i, None)
        if a is None:
            off, nb, code = self.metas[i]
            self.f.seek(self.start + off)
            a = alloc(code, nb, False)
            if self.f.readinto(a) != nb:
                raise ModelError("truncated model file")
        return a

    def __setitem__(self, i, a):
        self.got[i] = a


def scatter(t, y, npix, n, OC, o0):
    """A group of n output channels computed into t ([npix, n]) to their place in y ([npix, OC], from o0)."""
    p = 0
    q = o0
    for _ in range(npix):
        y[q:q + n] = t[p:p + n]
        p += n
        q += OC


def groups(kind, p, nb, chunk):
    # (output channels per group, weight bytes per output channel, output pixels) for a streamed layer split
    # into groups; (0, 0, 0) when it is read whole (small enough, a depthwise filter, or a batched FC)
    if nb <= chunk or kind == "DW" or (kind == "FC" and p["batches"] != 1):
        return 0, 0, 0
    if kind == "FC":
        k = p["n_in"]
        npix = 1
    else:
        k = p["k"][0] * p["k"][1] * p["inp"][2]
        npix = p["out"][0] * p["out"][1]
    return max(1, chunk // k), k, npix


def load(m, path, f, n, weights, chunk):
    """A large model's buffers (mote.infer.Model; f: the model file, its header n bytes; this module imported
    after the first decoded header was let go, into the hole it left): the streaming plan (m.weights, m._wbuf,
    m._tmp, m.streamed_bytes), then the arena and those buffers allocated first, without a same-size
    temporary and, when they are large, on a heap without the decoded header in it (its objects scatter over
    the heap and can leave no 55 KB hole on a 192 KB heap): the header is then decoded again. -> the header."""
    from mote import cbor
    chunk = chunk or STREAM_CHUNK
    if weights not in ("auto", "ram", "stream") or chunk < 1:
        raise ModelError("weights must be 'auto', 'ram' or 'stream', chunk >= 1")
    f.seek(8)
    h = cbor.loads(f.read(n))
    wids, wmax, tmax, m.weights, m.streamed_bytes = plan(h, weights, chunk)
    total = 0
    for e in h["blobs"]:
        total += e[1]
    m.weights_bytes = total - m.streamed_bytes      # (kept in RAM)
    arena = max(h["arena"], 1)
    if arena + wmax + tmax > BIG_BUFFERS:
        h = None
        import gc
        gc.collect()
    m.arena = alloc("b", arena)
    m._wbuf = alloc("b", wmax) if wmax else None
    m._tmp = alloc("b", tmax) if tmax else None
    m.ram_bytes = wmax + tmax
    if h is None:
        f.seek(8)
        h = cbor.loads(f.read(n))
    return h


def _bind(m, h, K, f, start, chunk, path):
    """Bind a large model's ops in order, each constant read from the file when its op is bound and each op's
    header entry dropped once bound: the decoded header (~20 KB for a 30-op model on a 32-bit port) shrinks
    while the plan grows, so the load's peak stays near its end. -> the blobs (for the variables)."""
    chunk = chunk or STREAM_CHUNK
    h["tensors"] = None     # (the views are made: a 100-tensor table is ~4 KB of small lists on a 32-bit port)
    metas = h["blobs"]
    blobs = Blobs(f, metas, start)
    wids = streamed_ids(h["ops"]) if m.weights == "stream" else {}
    ops = h["ops"]
    h["ops"] = None
    ops.reverse()
    while ops:
        kind, p = ops.pop()
        if kind in STREAMED and p["w"] in wids:
            bind_layer(m, K, kind, p, blobs, metas[p["w"]], start, chunk, f)
        else:
            m._plan.append(m._bind(K, kind, p, blobs))
        p = None
    if wids:        # streamed weights are read from here at every run (until Model.close())
        m._file = open(path, "rb")
    return blobs


def plan(h, weights, chunk):
    """(weight blob ids streamed, weight buffer bytes, CONV group tmp bytes, scheme, streamed bytes): the weight
    blobs of FC/CONV/DW layers can stay in the file, read per layer at every run into one buffer the size of
    the largest layer (group) instead of RAM; weights="auto" keeps them in RAM when they, the activations and
    RAM_MARGIN take at most half of the free heap (gc.mem_free()), and always when they are small."""
    ops, metas = h["ops"], h["blobs"]
    wids = streamed_ids(ops)
    streamed = 0
    for i in wids:
        streamed += metas[i][1]
    if weights == "auto":
        import gc
        free = gc.mem_free() if hasattr(gc, "mem_free") else None
        weights = "ram" if free is None or streamed <= RAM_MARGIN or \
            streamed + h["arena"] + RAM_MARGIN <= free // 2 else "stream"
    if weights == "ram":
        return {}, 0, 0, weights, 0
    wmax, tmax = sizes(ops, metas, wids, chunk)
    return wids, wmax, tmax, weights, streamed


def streamed_ids(ops):
    """{blob id: 1} of the weights of FC/CONV/DW layers (what may stay in the file)."""
    wids = {}
    for kind, p in ops:
        if kind in STREAMED:
            wids[p["w"]] = 1
    return wids


def sizes(ops, metas, wids, chunk):
    """(weight buffer bytes, CONV group tmp bytes) for the streamed layers."""
    wmax = 0
    tmax = 0
    for kind, p in ops:
        if kind in STREAMED and p["w"] in wids:
            nb = metas[p["w"]][1]
            g, k, npix = groups(kind, p, nb, chunk)
            wmax = max(wmax, g * k if g else nb)
            if g and kind == "CONV":
                tmax = max(tmax, npix * g)
    return wmax, tmax


def load_weights(m, pos, view, flip):
    # one layer's weights from the model file into the shared buffer (exactly len(view) bytes)
    f = m._file
    f.seek(pos)
    if f.readinto(view) != len(view):
        raise ModelError("model file changed or truncated while in use")
    if flip is not None:
        flip(view, len(view))


def read_bind(f, pos, view):
    # read a layer's weights for binding; returns a function telling (after the bind) whether the kernel
    # flipped them to offset binary in place (viper MAC layers do: redone after every read at run time)
    f.seek(pos)
    if f.readinto(view) != len(view):
        raise ModelError("truncated model file")
    first = view[0] if len(view) else 0

    def flipped(v):
        if len(v) and v[0] != first:
            from mote import kernels_viper_common
            return kernels_viper_common._flip
        return None
    return flipped


def bind_layer(m, K, kind, p, blobs, meta, start, chunk, f):
    """Append a streamed layer to m's plan: (read weights, run) once, or per group of output channels (f: the
    model file while loading)."""
    wm = memoryview(m._wbuf)
    off, nb, code = meta
    g, k, npix = groups(kind, p, nb, chunk)
    if not g:
        view = wm[0:nb]
        blobs[p["w"]] = view
        flip = read_bind(f, start + off, view)
        bound = m._bind(K, kind, p, blobs)
        m._plan.append((load_weights, (m, start + off, view, flip(view))))
        m._plan.append(bound)
        return
    O = p["n_out"] if kind == "FC" else p["out"][2]
    fill = _fill(k, p["in_zp"]) if kind == "CONV" else None
    tm = memoryview(m._tmp) if m._tmp is not None else None
    bms = (memoryview(blobs[p["b"]]), memoryview(blobs[p["m"]]), memoryview(blobs[p["s"]]))      # read once
    o0 = 0
    while o0 < O:
        o1 = min(O, o0 + g)
        view = wm[0:(o1 - o0) * k]
        pos = start + off + o0 * k
        flip = read_bind(f, pos, view)
        bound = group(m, K, kind, p, bms, o0, o1, view, tm, fill)
        m._plan.append((load_weights, (m, pos, view, flip(view))))
        m._plan.extend(bound)
        o0 = o1


def group(m, K, kind, p, bms, o0, o1, wv, tm, fill):
    # output channels o0..o1-1 of a streamed FC (batches 1: straight into its slice of y) or CONV (into the
    # shared tmp buffer, then scattered to their channels of y); bms: the layer's bias, multipliers, shifts
    v = m._views
    n = o1 - o0
    b = bms[0][o0:o1]
    mm = bms[1][o0:o1]
    s = bms[2][o0:o1]
    if kind == "FC":
        return [_b(K, "fc", (v[p["x"]], wv, b, mm, s, v[p["y"]][o0:o1], p["n_in"], n, 1, p["out_zp"], p["lo"],
                             p["hi"]))]
    H, W, C = p["inp"]
    OH, OW, OC = p["out"]
    KH, KW = p["k"]
    geo = (KH, KW, p["stride"][0], p["stride"][1], p["dil"][0], p["dil"][1], p["pad"][0], p["pad"][1])
    t = tm[0:OH * OW * n]
    return [_b(K, "conv", (v[p["x"]], wv, b, mm, s, t, m._patch, fill, H, W, C, OH, OW, n) + geo
               + (p["out_zp"], p["lo"], p["hi"])),
            (scatter, (t, v[p["y"]], OH * OW, n, OC, o0))]
