"""`mote model check`: will this .tflite run on that board? (offline: ops, RAM, flash, latency)"""

from .. import boards
from ..paths import firmware_dir
from . import ramest
from .ops import module_kinds
from .convert import UnsupportedModel, check_support, convert
from .tflite_reader import read_tflite

# Fallback speed figures (MAC/s of the device engine, per kernel set) when a board file has no "infer" entry.
# sim: measured on x86-64 with tools/bench_infer.py; MCU figures are rough guesses, marked as such.
DEFAULT_SPEED = {
    "sim": {"viper64": 4.5e8, "viper32": 4.2e8, "pure": 1.2e7,
            "source": "measured (tools/bench_infer.py, x86-64, conv/FC models)"},
}
GENERIC_MCU = {"viper32": 4.0e6, "pure": 1.5e5,
               "source": "generic guess for a ~130 MHz Cortex-M; add 'infer' to the board file"}
ENGINE_FILES = ("infer.py", "infer_bind.py", "infer_ext.py", "infer_stream.py", "infer_pre.py", "kernels.py", "kernels_ext.py",
                "kernels_ext_viper.py", "kernels_viper64.py", "kernels_viper32.py", "kernels_viper_common.py",
                "cbor.py", "compat.py", "mtm_check.py", "mtm_check_ext.py")


def interpreter_overhead(n_ops, n_tensors, n_softmax, word=4):
    """(Superseded by motekit.model.ramest, which replays the loader's allocations; kept for callers.)"""
    return (2000 + 550 * n_ops + 40 * n_tensors) * word // 8 + 1024 * n_softmax


# RAM taken by the engine's own code (mote.infer, the kernel sets, cbor) once imported: gc.mem_alloc() around
# `from mote import infer, cbor` on the unix port, 64-bit (viper64 + viper32 + pure, compiled from .py: the
# sim), and on the emulated Pico W for the 32-bit boards (Cortex-M0 under qemu, the firmware as `mote install`
# writes it: .mpy with native code; tools: tests/e2e/test_emulated.py). STREAM: `infer_stream`, imported by a large
# model (activations above mote.infer.BIG_BUFFERS, or weights above RAM_MARGIN under weights="auto", or
# streamed weights); EXT: `infer_ext` + `kernels_ext` + `kernels_ext_viper`, imported only by models with the
# ops of exported models (EXT_KINDS) or variables. Frozen into the firmware
# the code costs no heap. (mote.mtm_check, the validator, is not resident: mote.store.load_model imports it for
# a load and drops it before the engine comes in.) BIND: `infer_bind`, the core ops' binders, load-time code too:
# Model imports it for a load and drops it once the plan is bound (in the load's peak, not in the model's RAM).
# (Remeasured with issue 18's op tables: the binders left the resident engine, -1,056 B on the emulated Pico W,
# -1,376 B on the unix port; infer_ext's table +240 B / +512 B.)
ENGINE_CODE_RAM_64 = 38720
ENGINE_CODE_RAM_32 = 36080
STREAM_CODE_RAM_64 = 4928
STREAM_CODE_RAM_32 = 3840
EXT_CODE_RAM_64 = 12064
EXT_CODE_RAM_32 = 18208
BIND_CODE_RAM_64 = 2208
BIND_CODE_RAM_32 = 1696
BIG_BUFFERS = 16384         # = mote.infer.BIG_BUFFERS
EXT_KINDS = tuple(sorted(module_kinds("ext")))      # the ops whose model imports infer_ext (motekit.model.ops)


def _latency_range(macs, rate_range):
    """[fastest, slowest] ms from a board file's [low, high] MAC/s (tools/bench_mcu.py: instruction counts on an
    emulated core over an assumed CPI range), or None."""
    if not rate_range or len(rate_range) != 2 or min(rate_range) <= 0:
        return None
    lo, hi = sorted(rate_range)
    return [macs / hi * 1000.0, macs / lo * 1000.0]


def window_fit(header, window=50, axes=3):
    """Whether the board's sample window (config `window`, default 50 samples of 3 axes) is this model's
    input: None when it is, else one line (the board refuses such a model at its trial unless it is signed
    with --no-window, as a model that is not a window classifier)."""
    pre = header.get("pre")
    need = header["tensors"][header["inputs"][0]["t"]][1]
    if pre:
        if pre.get("n") == window and pre.get("axes", 3) == axes:
            return None
        return (f"the model classifies {pre.get('n')}-sample windows; set the board's config window to "
                f"{pre.get('n')} (mote config window={pre.get('n')})")
    if need == window * axes and len(header["inputs"]) == 1:
        return None
    return (f"the input is {need} B, a {window}-sample {axes}-axis window gives {window * axes}: "
            f"not a window classifier here (sign it with --no-window, or the board refuses it at its trial)")


def uses_stream_module(header, data, scheme):
    """Does mote.infer import mote.infer_stream for this model (its .mtm bytes `data`) under weights="auto"? As
    Model._load decides: a large arena, or more than RAM_MARGIN bytes of file after the header."""
    n = int.from_bytes(data[4:8], "little")
    start = (8 + n + 15) // 16 * 16
    return scheme == "stream" or max(header["arena"], 1) > BIG_BUFFERS or len(data) - start > ramest.RAM_MARGIN


def check(tflite_path, board):
    b = boards.load(board)
    g = read_tflite(tflite_path)
    report = {"board": board, "model": str(tflite_path), "problems": check_support(g), "fits": False}
    if report["problems"]:
        return report
    try:
        c = convert(tflite_path)
    except UnsupportedModel as e:
        report["problems"] = e.problems
        return report
    st = c.stats
    data = c.to_bytes()
    from .validate import mtm_check, validate_mtm
    try:
        validate_mtm(data)            # the device's own structural checks (firmware/mote/mtm_check.py)
    except mtm_check().ModelError as e:
        report["problems"] = [f"the converted model fails the device's checks: {e}"]
        return report
    mtm = len(data)
    report["window"] = window_fit(c.header)
    word = 8 if b.get("name") == "sim" else 4
    speed = b.get("infer") or DEFAULT_SPEED.get(b.get("name"), GENERIC_MCU)
    frozen = bool(b.get("infer", {}).get("frozen", False))
    code_ram = 0 if frozen else (ENGINE_CODE_RAM_64 if word == 8 else ENGINE_CODE_RAM_32)
    if not frozen and (any(k in EXT_KINDS for k, _ in c.header["ops"]) or c.header.get("vars")):
        code_ram += EXT_CODE_RAM_64 if word == 8 else EXT_CODE_RAM_32
    # MicroPython ports have the viper emitter: viper64 on a 64-bit word, viper32 on the 32-bit MCUs;
    # CircuitPython has no native emitter (pure kernels)
    fw_mp = b.get("firmware", "micropython") == "micropython"
    kern = (b.get("infer") or {}).get("kernels") or (("viper64" if word == 8 else "viper32") if fw_mp else "pure")
    if kern not in speed and kern.startswith("viper") and "viper" in speed:
        speed = dict(speed, **{kern: speed["viper"]})
    engine_flash = sum((firmware_dir() / "mote" / f).stat().st_size for f in ENGINE_FILES
                       if (firmware_dir() / "mote" / f).exists())
    # the heap the loaded model takes, replayed from the loader's allocations (ramest; within 10 % of
    # gc.mem_alloc() on the unix port), under the weight scheme the engine picks for this model (weights="auto")
    heap = b.get("ram", {}).get("heap_bytes")
    # free heap at load: the board's heap less the engine's code (the app's own objects are not counted)
    free = heap - code_ram - ramest.header_transient(c.header, word) if heap else None
    scheme, _, streamed = ramest.scheme(c.header, "auto", free)
    if not frozen and uses_stream_module(c.header, data, scheme):
        code_ram += STREAM_CODE_RAM_64 if word == 8 else STREAM_CODE_RAM_32
    model_ram = ramest.estimate(c.header, kern, scheme, word=word)
    other = "ram" if scheme == "stream" else "stream"
    other_ram = ramest.estimate(c.header, kern, other, word=word)
    overhead = model_ram - st["arena"] - st["scratch"] - 8 * st["taps"] - \
        (st["weights_bytes"] if scheme == "ram" else st["weights_bytes"] - streamed)
    ram_total = model_ram + code_ram
    # while loading: the decoded header and the binders too
    peak = ram_total + ramest.header_transient(c.header, word) + \
        (0 if frozen else BIND_CODE_RAM_64 if word == 8 else BIND_CODE_RAM_32)
    fs = b.get("flash", {}).get("fs_bytes")
    report.update(
        ops=[f"{op.name} v{op.version}" for op in g.ops],
        macs=st["macs"], weights_bytes=st["weights_bytes"], peak_activation_bytes=st["arena"],
        activation_lower_bound=st["lower_bound"], scratch_bytes=st["scratch"] + 8 * st["taps"],
        interpreter_overhead_bytes=overhead, engine_code_ram_bytes=code_ram, ram_bytes=ram_total, heap_bytes=heap,
        weights_scheme=scheme, streamed_weights_bytes=streamed if scheme == "stream" else 0,
        model_ram_bytes=model_ram, other_scheme={"weights": other, "ram_bytes": other_ram + code_ram},
        load_peak_bytes=peak,
        model_file_bytes=mtm, engine_flash_bytes=engine_flash, flash_bytes=mtm + engine_flash, fs_bytes=fs,
        kernels=kern, macs_per_s=speed.get(kern), speed_source=speed.get("source", "board file"),
        est_latency_ms=(st["macs"] / speed[kern] * 1000.0) if speed.get(kern) else None,
        est_latency_ms_range=_latency_range(st["macs"], speed.get(f"{kern}_range")),
    )
    fails = []
    if heap is not None and peak > heap:
        fails.append(f"RAM: needs {peak} bytes while loading ({ram_total} once loaded: model {model_ram}, weights "
                     f"{scheme == 'ram' and 'in RAM' or 'streamed'}, activations {st['arena']}; engine code "
                     f"{code_ram}), board heap is {heap}")
    if fs is not None and mtm + engine_flash > fs:
        fails.append(f"flash: needs {mtm + engine_flash} bytes, board filesystem is {fs}")
    report["fails"] = fails
    report["fits"] = not fails
    return report
