"""Heap the device engine takes for a loaded model (`mote.infer.Model`), computed from the .mtm header by
replaying what the loader allocates: every buffer (arena, patch and tap scratch, weight blobs kept in RAM or
the streaming buffers, tables built at load), each rounded to the GC's block (4 machine words) with its
object header, plus the bound op plan. Checked against gc.mem_alloc() on the unix port, 64-bit and 32-bit
(tests/firmware/test_model_ram.py): within 10 % on every public model, both weight schemes, every kernel set."""

from collections import namedtuple

from .ops import KINDS

RAM_MARGIN = 16384            # mirrors mote.infer
STREAM_CHUNK = 8192
CAP = 256                     # mirrors mote.kernels_viper_common


def _groups(kind, p, nb, chunk):
    if nb <= chunk or kind == "DW" or (kind == "FC" and p["batches"] != 1):
        return 0, 0, 0
    if kind == "FC":
        return max(1, chunk // p["n_in"]), p["n_in"], 1
    k = p["k"][0] * p["k"][1] * p["inp"][2]
    return max(1, chunk // k), k, p["out"][0] * p["out"][1]


def scheme(header, weights="auto", free=None):
    """(scheme, streamed blob ids, streamed bytes). weights="auto" decides as mote.infer does at load: in RAM
    when weights + activations + RAM_MARGIN take at most half of `free` (the heap free at load; None: plenty)."""
    metas = header["blobs"]
    wids = {p["w"] for k, p in header["ops"] if KINDS[k].streamed}
    streamed = sum(metas[i][1] for i in wids)
    if weights == "auto":
        weights = "ram" if free is None or streamed <= RAM_MARGIN or \
            streamed + header["arena"] + RAM_MARGIN <= free // 2 else "stream"
    return weights, (wids if weights == "stream" else set()), streamed


# what an op's ram rule (motekit.model.ops.Kind.ram) is given: the GC block, buf(n) an array's and tup(n) an
# n-tuple's heap, the kernel set (viper?), and the set of blob ids the loader does not keep (a rule may add to it)
Acc = namedtuple("Acc", "blk buf tup viper freed")


# object overhead, in machine words, of one bound kernel call (the (function, args) pair, its argument tuple
# and the small arrays a binder makes), of one streamed-weights read and of one group scatter: fitted on the
# unix port's gc.mem_alloc(), 64-bit and 32-bit (see module doc)
OP_WORDS = {"viper": 20, "pure": 23}
LOAD_WORDS = 16
SCATTER_WORDS = 24


def estimate(header, kernels="viper32", weights="auto", chunk=STREAM_CHUNK, word=4, parts=False, free=None):
    """Bytes of heap after Model(path, kernels, weights) on a port with `word`-byte machine words (`free`: the
    heap free at load, for weights="auto")."""
    blk = 4 * word
    viper = kernels.startswith("viper")

    def buf(n):                     # array / bytearray: one block of object header + the data, in blocks
        return blk + -(-max(n, 0) // blk) * blk

    def tup(n):
        return -(-(2 + n) * word // blk) * blk

    weights, wids, _ = scheme(header, weights, free)
    metas = header["blobs"]
    bufs = buf(max(header["arena"], 1))
    bufs += len(header["tensors"]) * blk + tup(len(header["tensors"]))      # a memoryview per tensor
    sc, taps = header.get("scratch", 0), header.get("taps", 0)
    bufs += (buf(sc) if sc else 0) + (2 * buf(4 * taps) if taps else 0)
    freed = set(wids)               # blobs not kept after load
    acc = Acc(blk, buf, tup, viper, freed)
    wmax = tmax = 0
    kern = loads = scat = 0
    scratch_k = acc_o = 0
    for kind, p in header["ops"]:
        if not KINDS[kind].streamed:
            kern += 1
            if KINDS[kind].ram is not None:         # what its binder allocates (motekit.model.ops)
                bufs += KINDS[kind].ram(p, metas, acc)
            continue
        O = p["n_out"] if kind == "FC" else p["out"][2]
        k = p["n_in"] if kind == "FC" else p["k"][0] * p["k"][1] * p["inp"][2]
        mac = viper and kind != "DW"
        if viper:
            acc_o = max(acc_o, O)
            if kind != "DW":
                scratch_k = max(scratch_k, k)
        if kind == "CONV":
            bufs += buf(k)                          # the layer's out-of-image fill row
        groups = [O]
        if p["w"] in wids:
            nb = metas[p["w"]][1]
            g, kk, npix = _groups(kind, p, nb, chunk)
            wmax = max(wmax, g * kk if g else nb)
            if g:
                groups = [min(g, O - o) for o in range(0, O, g)]
                # memoryview slices of b, m, s per group (a viper MAC layer keeps m and s only)
                bufs += len(groups) * (2 if mac else 3) * blk
                if kind == "CONV":
                    tmax = max(tmax, npix * g)
                    scat += len(groups)
            loads += len(groups)
        kern += len(groups)
        if mac:
            bufs += sum(buf(4 * n) + buf(60) for n in groups)   # folded offset-binary bias, geometry
            freed.add(p["b"])                       # the raw bias is replaced by the folded one
    if viper:
        bufs += buf(scratch_k) + buf(4 * max(acc_o, CAP))
    bufs += sum(buf(nb) for i, (off, nb, code) in enumerate(metas) if i not in freed)
    bufs += (buf(wmax) if wmax else 0) + (buf(tmax) if tmax else 0)
    n = kern + loads + scat
    over = (kern * OP_WORDS["viper" if viper else "pure"] + loads * LOAD_WORDS + scat * SCATTER_WORDS) * word \
        + tup(n) + 4 * word + 190 * word
    if parts:
        return dict(bufs=bufs, kern=kern, loads=loads, scat=scat, over=over)
    return bufs + over


def header_transient(header, word=4):
    """Heap the decoded .mtm header takes while the model loads (freed once the op plan is bound): measured
    6.1-6.7 bytes per CBOR byte on a 32-bit port and 10-13.4 on a 64-bit one (gc.mem_alloc() around
    cbor.loads, every public model), i.e. at most ~1.7 words per byte."""
    import cbor2
    return int(1.7 * word * len(cbor2.dumps(header)))


def load_peak(header, kernels="viper32", weights="auto", chunk=STREAM_CHUNK, word=4, free=None):
    """The most heap the load needs at once: the loaded model plus the decoded header it binds from."""
    return estimate(header, kernels, weights, chunk, word, free=free) + header_transient(header, word)
