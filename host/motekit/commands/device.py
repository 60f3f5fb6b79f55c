"""Commands that talk to one board: ports, info, monitor, ping, stats, config, repl, resume, reset."""

from __future__ import annotations

import json
import time

import click
from serial.tools import list_ports

from ..link import Link, MoteError
from ..show import duration_ms, emit_json, fields, table, text
from ..transport import TransportError
from .common import ble_option, connect, need_port, open_link, port_option, user_errors


@click.command()
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Ask each port for a motekit hello (takes up to a second per port).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: {\"ports\": [...]}.")
@click.argument("extra", nargs=-1, metavar="[PORT]...")
def ports(probe, as_json, extra):
    """List serial ports, marking those that answer a motekit hello.

    Pseudo-terminals (virtual boards) are not enumerated by the OS: pass their paths as PORT.
    """
    found = [(p.device, p.description or "", p.hwid or "") for p in list_ports.comports()]
    found += [(x, "given on the command line", "") for x in extra if x not in {f[0] for f in found}]
    if not found:
        click.echo("no serial ports found (virtual boards: pass their path, e.g. `mote ports /dev/pts/3`)")
        return
    rows = []
    for dev, desc, hwid in found:
        hello = None
        note = ""
        if probe:
            try:
                link = Link.open(dev, hello_timeout=1.0)
                hello = link.info
                link.close()
            except (MoteError, TransportError) as e:
                note = str(e)
        desc = "" if desc == "n/a" else desc          # pyserial's placeholder for "nothing known"
        hwid = "" if hwid == "n/a" else hwid
        rows.append({"port": dev, "description": desc, "hwid": hwid, "motekit": hello,
                     **({"note": note} if note and probe else {})})
    if as_json:
        emit_json({"ports": rows})
        return
    table(["port", "motekit", "board", "id", "fw", "description"],
          [(r["port"], "motekit" if r["motekit"] else ("-" if probe else "?"),
            (r["motekit"] or {}).get("board"), (r["motekit"] or {}).get("id"), (r["motekit"] or {}).get("fw"),
            r["description"] or "-") for r in rows])


# the hello's fields as a person reads them (docs/protocol.md); fields a newer board adds follow by name
INFO = (("id", "device id"), ("board", "board"), ("fw", "firmware"), ("impl", "interpreter"),
        ("arch", "architecture"), ("proto", "protocol"), ("link", "link"), ("mtu", "max frame"),
        ("caps", "capabilities"), ("boot", "boot"), ("uptime_ms", "uptime"), ("policy", "power band"), ("model", "model"), ("model_error", "model error"))


def _info_rows(h: dict):
    from .flash import _fmt_model
    rows = []
    for k, label in INFO:
        if k not in h:
            continue
        v = h[k]
        if k == "uptime_ms":
            v = duration_ms(v)
        elif k == "mtu":
            v = f"{v} B"
        elif k == "proto":
            v = f"v{v}"
        elif k == "model":
            v = _fmt_model(v) if v else "none: `mote flash MODEL.signed` installs one"
        elif k == "model_error" and v is None:
            continue
        rows.append((label, v))
    rows += [(k, h[k]) for k in sorted(h) if k not in dict(INFO)]
    return rows


@click.command()
@port_option
@ble_option
@click.option("--json", "as_json", is_flag=True, help="Print the hello as JSON.")
def info(port, ble, as_json):
    """Show the board's hello: id, board, firmware and protocol version, frame size, model."""
    with open_link(port, ble=ble) as link:
        h = link.info
    if as_json:
        emit_json(h)
        return
    fields(_info_rows(h))


@click.command()
@port_option
@ble_option
@click.option("--json", "as_json", is_flag=True, help="Print the round trips as one JSON object.")
def ping(port, ble, as_json):
    """Round-trip a ping frame and print the latency."""
    with open_link(port, ble=ble) as link:
        rtts = [link.ping(b"motekit-%d" % i) for i in range(5)]
    if as_json:
        emit_json({"device": link.device, "rtt_ms": [round(r * 1e3, 3) for r in rtts]})
        return
    click.echo(f"pong from {link.device}: min {min(rtts)*1e3:.2f} ms, max {max(rtts)*1e3:.2f} ms")


@click.command()
@port_option
@ble_option
@click.option("--json", "as_json", is_flag=True, help="Print the counters as one JSON object.")
def stats(port, ble, as_json):
    """Link and loop counters from the board (frames, drops, samples, free RAM)."""
    with open_link(port, ble=ble) as link, user_errors():
        s = link.request("stats")
    if as_json:
        emit_json(s)
        return
    fields(_stats_rows(s))


# stats as a person reads them: labelled, grouped, arrays split into their parts (docs/protocol.md `stats`)
STATS = (("uptime_ms", "uptime", duration_ms), ("policy", "power band", None), ("hz", "sample rate", "{} Hz"),
         ("samples", "samples", None), ("overruns", "overruns", None), ("mem_free", "free heap", "{} B"),
         ("infer", "inferences", ("{} runs", "{} failed", "p95 {} ms")), ("model_error", "model error", None),
         ("telemetry_seq", "telemetry seq", None), ("spool", "spool", ("{} queued", "{} dropped")),
         ("tx_frames", "frames sent", None), ("tx_bytes", "bytes sent", "{} B"),
         ("rx_frames", "frames received", None), ("rx_dropped", "frames dropped", None),
         ("rx_crc", "  bad CRC", None), ("rx_cobs", "  bad COBS", None), ("rx_short", "  too short", None),
         ("rx_overflow", "  too long", None), ("rx_version", "  wrong version", None),
         ("rx_garbage_bytes", "garbage bytes", None),
         ("ble", "BLE", ("{} connected", "{} let go")),
         ("sec", "refused", ("{} requests", "{} acks", "{} bonds")))


def _stats_rows(s: dict):
    rows = []
    for k, label, fmt in STATS:
        if k not in s:
            continue
        v = s[k]
        if callable(fmt):
            v = fmt(v)
        elif isinstance(fmt, str) and v is not None:
            v = fmt.format(text(v))
        elif isinstance(fmt, tuple) and isinstance(v, (list, tuple)):
            parts = []
            for f, x in zip(fmt, v):
                parts.append(f.format(text(x)) if "{}" in f else f"{text(x)} {f}")
            v = ", ".join(parts)
        rows.append((label, v))
    rows += [(k, s[k]) for k in sorted(s) if k not in {x[0] for x in STATS}]
    return rows


@click.command()
@port_option
@click.argument("settings", nargs=-1, metavar="[KEY=VALUE]...")
@ble_option
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as one JSON object.")
def config(port, settings, ble, as_json):
    """Show the board's configuration, or change it (KEY=VALUE, integers)."""
    params = {}
    for s in settings:
        key, sep, value = s.partition("=")
        if not sep:
            raise click.ClickException(f"{s!r}: settings look like KEY=VALUE (e.g. hop=25)")
        try:
            params[key] = int(value)
        except ValueError:
            raise click.ClickException(f"{s!r}: the value must be an integer") from None
    with open_link(port, ble=ble) as link, user_errors():
        cfg = link.request("config.set", params) if params else link.request("config.get")
    if as_json:
        emit_json(cfg)
        return
    fields(sorted(cfg.items()))


def _await_prompt(t, seen: bytes, wait_s: float = 5.0) -> bool:
    """True once the REPL's `>>> ` prompt is out. `seen`: what already came after the last frame (the
    prompt often arrives in the same read as the response, and sits in the frame decoder's buffer). If it
    does not show, ask for a fresh one: Ctrl-C cancels the line (and paste mode) and prints the prompt."""
    got = seen[-256:]
    deadline = time.monotonic() + wait_s
    nudge = time.monotonic() + 0.5
    while b">>> " not in got:
        now = time.monotonic()
        if now >= deadline:
            return False
        if now >= nudge:
            t.write(b"\x03")
            nudge = now + 1.0
        got = (got + t.read(0.1))[-256:]
    return True


@click.command()
@port_option
def repl(port):
    """Stop the firmware's link and leave the board at the MicroPython REPL (mpremote can then attach).

    Returns once the `>>> ` prompt is out; `mote resume` brings the firmware back."""
    with open_link(port) as link, user_errors():
        link.request("repl")
        # return only once the prompt is out: a tool that starts talking before the REPL is up can lose
        # its first bytes (the unix port flushes pending input as it enters the REPL)
        ok = _await_prompt(link.t, bytes(link.text_tail) + bytes(link.dec.buf))
    if not ok:
        raise click.ClickException(f"{link.t.name} left the link but no REPL prompt came within 5 s: "
                                   f"try `mote resume --port {link.t.name}`, or reset the board")
    click.echo(f"{link.t.name} is at the REPL; `mote resume --port {link.t.name}` (or Ctrl-D there) restarts "
               f"the firmware")


@click.command()
@port_option
@click.option("--timeout", type=float, default=15.0, show_default=True,
              help="Seconds to wait for the firmware's hello.")
def resume(port, timeout):
    """Bring a board at the REPL (after `mote repl`, mpremote or a terminal) back to the firmware.

    Leaves raw and paste mode, soft-resets (Ctrl-D: main.py runs again) and waits for the hello. A board
    already running the firmware takes the bytes as line noise and just answers."""
    from ..transport import SerialTransport

    port = need_port(port)
    with user_errors():
        t = SerialTransport(port)
        try:
            t.write(b"\x03\x02\x04")    # cancel the line (and paste mode), leave the raw REPL, soft reset
        finally:
            t.close()
        link = Link.open(port, hello_timeout=timeout)
        try:
            h = link.info
        finally:
            link.close()
    click.echo(f"{port}: firmware running again (boot {h.get('boot')}, fw {h.get('fw')}, id {h.get('id')})")


@click.command()
@port_option
@ble_option
def reset(port, ble):
    """Reboot the board."""
    with open_link(port, ble=ble) as link, user_errors():
        link.request("reset")
    click.echo("board is rebooting")


def _num(v):
    """A value for display: a float that is exactly a float32 (what a board with single-precision floats
    sends) in float32's shortest form (0.208, not 0.20800000429153442)."""
    if isinstance(v, float) and v == v:
        import struct
        try:
            if struct.unpack("<f", struct.pack("<f", v))[0] == v:
                import numpy as np
                return str(np.float32(v))
        except OverflowError:
            pass
    return v


def _line(r) -> str:
    vals = "  ".join(f"{x.get('n')}={_num(x.get('v', x.get('vs', x.get('vb'))))}" for x in r.to_json()["records"])
    return f"{r.seq:6d}  {r.type:5} {r.size:4d}B  {vals}"


@click.command()
@port_option
@ble_option
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per record: device, boot, seq, type, size (bytes on the wire), records.")
@click.option("--count", "-n", type=click.IntRange(min=1), default=None, help="Exit after N records.")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds without a record.")
@click.option("--reconnect", is_flag=True, help="When the port goes away, wait for it to come back.")
def monitor(port, ble, as_json, count, timeout, reconnect):
    """Decode telemetry live; shows dropped and corrupt frame counts.

    A viewer, not a consumer: its plain hello asks for live records only and it never acks, so the
    board keeps every record for the relay (docs/protocol.md "Retention, sessions and acks"). With
    --reconnect, after a drop it asks for the records after the last one it showed: none are missed."""
    port = port if ble else need_port(port)
    seen = 0
    last = {}
    quiet_since = time.monotonic()
    link = None
    err = click.get_text_stream("stderr")
    try:
        while count is None or seen < count:
            if link is None:
                link = _connect(port, reconnect, timeout, ble)
                if len(last) == 1:
                    # back after a drop: the board still holds what it sent meanwhile (nobody acked it):
                    # continue right after the last record shown, so the drop costs no records
                    try:
                        link.session(after=next(iter(last.values())))
                    except (MoteError, TransportError):
                        if not reconnect:
                            raise
                        link.close()          # lost again while resuming (a board still rebooting): retry
                        link = None
                        time.sleep(0.5)
                        continue
                if not as_json:
                    h = link.info
                    click.echo(f"# {h.get('board')} id={h.get('id')} fw={h.get('fw')} boot={h.get('boot')}", err=True)
            try:
                for r in link.records(timeout=0.5):
                    if r is None:
                        if timeout and time.monotonic() - quiet_since > timeout:
                            raise MoteError(f"no telemetry from {port or ble} for {timeout:g} s")
                        continue
                    quiet_since = time.monotonic()
                    prev = last.get(r.device)
                    if prev and prev[0] == r.boot and r.seq != prev[1] + 1 and not as_json:
                        click.echo(f"# gap: {r.seq - prev[1] - 1} record(s) missing before seq {r.seq}", err=True)
                    if prev and prev[0] != r.boot and not as_json:
                        click.echo(f"# board rebooted (boot {r.boot})", err=True)
                    last[r.device] = (r.boot, r.seq)
                    click.echo(json.dumps(r.to_json()) if as_json else _line(r))
                    seen += 1
                    if count is not None and seen >= count:
                        break
            except TransportError as e:
                if not reconnect:
                    raise
                click.echo(f"# {e}; waiting for the board to come back", err=True)
                link.close()
                link = None
    except (MoteError, TransportError) as e:
        _summary(link, err)
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        pass
    finally:
        if link is not None:
            link.close()
    _summary(link, err)


def _connect(port, reconnect, timeout, ble=None):
    deadline = time.monotonic() + (timeout or 3600 * 24 * 365)
    while True:
        try:
            return connect(port, ble, attempts=4 if (ble and reconnect) else 1)
        except (MoteError, TransportError):
            if not reconnect or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _summary(link, err):
    if link is None:
        return
    c = link.dec.counters()
    print(f"# frames {c['frames']} ok, {c['dropped']} dropped (crc {c['crc']}, cobs {c['cobs']}, "
          f"short {c['short']}, overflow {c['overflow']}, version {c['version']}), "
          f"{c['garbage_bytes']} garbage bytes, {link.malformed} malformed", file=err, flush=True)
