"""`mote model ...`: convert, check and evaluate int8 TFLite models for the device engine."""

import json
import sys
import textwrap
from pathlib import Path

import click

from ..model.convert import UnsupportedModel, convert
from ..model.tflite_reader import BadInput

# Exit codes of `mote model convert/check/eval` (documented in README.md, "Models"); 2 is click's usage error.
EXIT_DOES_NOT_FIT = 1      # check: RAM or flash exceeded; eval: outputs differ from the reference
EXIT_UNSUPPORTED = 3       # a valid model the device engine cannot run (op, version, type): one line per op
EXIT_BAD_INPUT = 4         # not a readable .tflite / .npy (empty, truncated, text, corrupted, wrong kind)


def _fail(lines, code):
    for line in ([lines] if isinstance(lines, str) else lines):
        click.echo(line, err=True)
    sys.exit(code)


def _model_errors(fn):
    """Map the pipeline's refusals to one line each and the documented exit code (no traceback)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except BadInput as e:
            _fail(f"bad input: {e}", EXIT_BAD_INPUT)
        except UnsupportedModel as e:
            _fail([f"unsupported: {p}" for p in e.problems], EXIT_UNSUPPORTED)
    return wrapper


@click.group()
def model():
    """Int8 TFLite models -> the device model format (.mtm), board fit checks, bit-exactness.

    Exit codes: 0 ok, 1 does not fit (check) or differs from the reference (eval), 2 usage error,
    3 unsupported model (one line per missing op), 4 bad input file."""


@model.command("convert")
@click.argument("tflite", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="output .mtm (default: NAME.mtm in the current directory)")
@click.option("--labels", help="comma-separated class labels, or @file with one label per line")
@_model_errors
def convert_cmd(tflite, output, labels):
    """Convert MODEL.tflite into the device format."""
    lab = None
    if labels:
        if labels.startswith("@"):
            try:
                lab = Path(labels[1:]).read_text(errors="replace").split("\n")
            except OSError as e:
                _fail(f"bad input: labels file {labels[1:]}: {e.strerror or e}", EXIT_BAD_INPUT)
        else:
            lab = labels.split(",")
        lab = [x.strip() for x in lab if x.strip()]
    c = convert(tflite, labels=lab)
    # never beside the input by default: it may sit in a shared, read-only or someone else's folder
    out = output or str(Path.cwd() / (Path(tflite).stem + ".mtm"))
    from ..model.validate import mtm_check
    try:
        n = c.write(out)
    except OSError as e:
        _fail(f"cannot write {out}: {e.strerror or e}", EXIT_BAD_INPUT)
    except mtm_check().ModelError as e:
        _fail(f"unsupported: the converted model fails the device's checks (a converter bug): {e}",
              EXIT_UNSUPPORTED)
    s = c.stats
    click.echo(f"{out}: {n} bytes, {s['n_ops']} ops, {s['macs']} MACs, weights {s['weights_bytes']} B, "
               f"activations {s['arena']} B (lower bound {s['lower_bound']} B)")


@model.command("check")
@click.argument("tflite", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", "-b", required=True, help="Board name (e.g. pico_w, sim; see boards/) or a board file (.json).")
@click.option("--json", "as_json", is_flag=True, help="machine-readable report")
@_model_errors
def check_cmd(tflite, board, as_json):
    """Does MODEL.tflite fit BOARD? Ops, RAM, flash and estimated latency.

    Given a converted MODEL.mtm instead, runs the device's own structural checks on it (what the board runs
    before any kernel) and says whether its input is the board's sample window."""
    from ..model.check import check
    with open(tflite, "rb") as f:
        is_mtm = f.read(4) == b"MTM1"
    if is_mtm:
        return _check_mtm(tflite, board, as_json)
    try:
        r = check(tflite, board)
    except FileNotFoundError as e:
        raise click.ClickException(str(e))
    if as_json:
        click.echo(json.dumps(r, indent=1))
    else:
        for p in r["problems"]:
            click.echo(f"unsupported: {p}")
        if not r["problems"]:
            click.echo(f"board {board}: kernels {r['kernels']}")
            click.echo(f"  ops               {len(r['ops'])} ({', '.join(sorted(set(r['ops'])))})")
            click.echo(f"  MACs              {r['macs']}")
            click.echo(f"  weights           {r['weights_bytes']} B, "
                       + ("in RAM" if r["weights_scheme"] == "ram" else
                          f"streamed from flash per layer ({r['streamed_weights_bytes']} B)"))
            click.echo(f"  peak activations  {r['peak_activation_bytes']} B (lower bound {r['activation_lower_bound']} B)")
            click.echo(f"  scratch           {r['scratch_bytes']} B")
            click.echo(f"  engine overhead   {r['interpreter_overhead_bytes']} B (op plan, tables, buffers) + engine "
                       f"code {r['engine_code_ram_bytes']} B (0 when frozen)")
            o = r["other_scheme"]
            click.echo(f"  RAM total         {r['ram_bytes']} B of {r['heap_bytes']} B heap (weights "
                       f"{r['weights_scheme']}; {o['weights']}: {o['ram_bytes']} B), {r['load_peak_bytes']} B "
                       "while loading")
            click.echo(f"  flash             {r['flash_bytes']} B (model {r['model_file_bytes']} + engine "
                       f"{r['engine_flash_bytes']}) of {r['fs_bytes']} B")
            if r["est_latency_ms"] is not None:
                click.echo(f"  est. latency      {r['est_latency_ms']:.2f} ms at {r['macs_per_s']:.3g} MAC/s")
                # where the speed figure comes from: wrapped under its line, not one ~400-character line
                for line in textwrap.wrap(f"({r['speed_source']})", 92):
                    click.echo(f"                    {line}")
                if r.get("est_latency_ms_range"):
                    click.echo(f"  latency range     {r['est_latency_ms_range'][0]:.2f}-{r['est_latency_ms_range'][1]:.2f} ms")
        if r.get("window"):
            w = r["window"].split(": ", 1)
            click.echo(f"  window            {w[0]}")
            if len(w) > 1:
                click.echo(f"                    {w[1]}")
        for f in r.get("fails", []):
            click.echo(f"DOES NOT FIT: {f}")
        if not r["problems"] and not r.get("fails"):
            click.echo("fits: yes")
    if r["problems"]:
        sys.exit(EXIT_UNSUPPORTED)
    if not r["fits"]:
        sys.exit(EXIT_DOES_NOT_FIT)


def _check_mtm(path, board, as_json):
    from .. import boards
    from ..model.check import window_fit
    from ..model.validate import mtm_check, validate_mtm
    try:
        boards.load(board)
    except Exception as e:          # (an unknown board: one line)
        raise click.ClickException(str(e).strip())
    data = Path(path).read_bytes()
    try:
        h = validate_mtm(data)
    except mtm_check().ModelError as e:
        if as_json:
            click.echo(json.dumps({"model": str(path), "board": board, "valid": False, "problem": str(e)}))
            sys.exit(EXIT_BAD_INPUT)
        _fail(f"bad input: {path} fails the device's checks: {e}", EXIT_BAD_INPUT)
    win = window_fit(h)
    if as_json:
        click.echo(json.dumps({"model": str(path), "board": board, "valid": True, "ops": len(h["ops"]),
                               "arena": h["arena"], "bytes": len(data), "window": win}))
        return
    click.echo(f"{path}: passes the device's checks ({len(h['ops'])} ops, {len(data)} B, activations "
               f"{h['arena']} B); for the board fit, check the .tflite")
    if win:
        click.echo(f"  window            {win}")


@model.command("eval")
@click.argument("tflite", type=click.Path(exists=True, dir_okay=False))
@click.option("--inputs", "-i", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help="X.npy of int8 inputs, [N, *input_shape] (repeat once per model input)")
@click.option("--kernels", default="viper,pure", help="kernel sets to run (viper,pure)")
@click.option("--json", "as_json", is_flag=True)
@_model_errors
def eval_cmd(tflite, inputs, kernels, as_json):
    """Run the converted model under micropython and the TFLite reference; report mismatches and timing."""
    from ..model.evaluate import evaluate, load_inputs
    arrs = [load_inputs(p) for p in inputs]
    r = evaluate(tflite, arrs, kernels=tuple(k for k in kernels.split(",") if k))
    if as_json:
        click.echo(json.dumps(r, indent=1))
    else:
        ref = r["reference"]
        click.echo(f"{r['n']} inputs; reference {ref['name']} BUILTIN_REF ({ref['rounding']} rounding): "
                   f"{r['ref_us']:.1f} us")
        for k, v in r["kernels"].items():
            click.echo(f"  {k:6s} mismatches {v['mismatches']} (max |diff| {v['max_abs_diff']}), "
                       f"{v['best_us']} us best, {v['mean_us']:.0f} us mean, RAM {v['ram_bytes']} B")
    if any(v["mismatches"] for v in r["kernels"].values()):
        sys.exit(EXIT_DOES_NOT_FIT)


# Signing (COSE_Sign1 manifests) lives in motekit.commands.signing; users find it under `mote model`.
from .signing import sign as _sign, verify as _verify  # noqa: E402

model.add_command(_sign, "sign")
model.add_command(_verify, "verify")
