# mote.infer_stream: weights kept in the model file and read per layer at every run (Model(weights="stream")):
# the buffer sizes, and each streamed FC/CONV/DW layer bound as (read its weights, run it), a layer larger
# than `chunk` bytes as groups of output channels. Imported only by a model that streams, so that the others
# pay no RAM for this code. Results are bit-identical to weights in RAM.
from mote import kernels as _pure
from mote.infer import ModelError, _b, _fill


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


def sizes(ops, metas, wids, chunk):
    """(weight buffer bytes, CONV group tmp bytes) for the streamed layers."""
    wmax = 0
    tmax = 0
    for kind, p in ops:
        if kind in ("FC", "CONV", "DW") and p["w"] in wids:
            nb = metas[p["w"]][1]
            g, k, npix = groups(kind, p, nb, chunk)
            wmax = max(wmax, g * k if g else nb)
            if g and kind == "CONV":
                tmax = max(tmax, npix * g)
    return wmax, tmax


def load_weights(f, pos, view, flip):
    # one layer's weights from the model file into the shared buffer (exactly len(view) bytes)
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


def bind(m, K, kind, p, blobs, meta, start, f, chunk, wm, tm):
    """Append a streamed layer to m's plan: (read weights, run) once, or per group of output channels."""
    wi = p["w"]
    off, nb, code = meta
    g, k, npix = groups(kind, p, nb, chunk)
    if not g:
        view = wm[0:nb]
        blobs[wi] = view
        flip = read_bind(f, start + off, view)
        bound = m._bind(K, kind, p, blobs)
        blobs[wi] = None
        m._plan.append((load_weights, (f, start + off, view, flip(view))))
        m._plan.append(bound)
        return
    O = p["n_out"] if kind == "FC" else p["out"][2]
    fill = _fill(k, p["in_zp"]) if kind == "CONV" else None
    o0 = 0
    while o0 < O:
        o1 = min(O, o0 + g)
        view = wm[0:(o1 - o0) * k]
        pos = start + off + o0 * k
        flip = read_bind(f, pos, view)
        bound = group(m, K, kind, p, blobs, o0, o1, view, tm, fill)
        m._plan.append((load_weights, (f, pos, view, flip(view))))
        m._plan.extend(bound)
        o0 = o1


def group(m, K, kind, p, blobs, o0, o1, wv, tm, fill):
    # output channels o0..o1-1 of a streamed FC (batches 1: straight into its slice of y) or CONV (into the
    # shared tmp buffer, then scattered to their channels of y)
    v = m._views
    n = o1 - o0
    b = memoryview(blobs[p["b"]])[o0:o1]
    mm = memoryview(blobs[p["m"]])[o0:o1]
    s = memoryview(blobs[p["s"]])[o0:o1]
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
            (_pure.scatter, (t, v[p["y"]], OH * OW, n, OC, o0))]
