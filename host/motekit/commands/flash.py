"""`mote flash`, `mote status`, `mote rollback`, `mote confirm`, `mote provision`: the board's model store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..flash import Flasher, manifest_length
from ..link import MoteError
from ..progress import Bar, human_rate
from ..show import emit_json
from .common import ble_option, connect, need_port, open_link, port_option, user_errors


def _trust():
    from ..keys import Keystore
    return Keystore().trust_list()


def host_verify(data: bytes):
    """The host checks the file before sending a byte: signature, trusted and unrevoked kid, hash, size."""
    from ..keys import KeystoreError
    from ..manifest import ManifestError, verify_signed
    try:
        tl = _trust()
        return verify_signed(data, tl.public_keys(), tl.revoked_kids())
    except (ManifestError, KeystoreError) as e:
        raise MoteError(f"refusing to flash: {e}") from None


def board_precheck(link, data: bytes) -> None:
    """What the host can check against the board before sending a byte: its board name (hello), the
    anti-rollback floor, the free flash and a pending trial (store.status), and whether it trusts the signing key
    (keys.get: what `mote provision` sent). The board checks all of it again at upload.begin."""
    import cbor2

    from ..manifest import split_signed
    obj, _ = split_signed(data)
    m = cbor2.loads(obj.value[2])
    kid = cbor2.loads(obj.value[0]).get(4, b"").hex()
    board = (link.info or {}).get("board")
    boards = m.get("boards") or []
    if boards and board not in boards and "*" not in boards:
        raise MoteError(f"refusing to flash: the model is for board(s) {', '.join(boards)}, this board is {board}")
    st = link.request("store.status", timeout=10)
    floor, seq = st.get("floor"), m.get("seq")
    if isinstance(floor, int) and isinstance(seq, int) and seq <= floor:
        raise MoteError(f"refusing to flash: sequence number {seq} is not newer than the board's installed "
                        f"{floor} (anti-rollback; sign it with a higher --seq)")
    free = st.get("free")
    if isinstance(free, int) and len(data) > free:
        raise MoteError(f"refusing to flash: the {len(data)}-byte file does not fit the board's free flash "
                        f"({max(0, free)} bytes, after the telemetry spool's reserve)")
    if st.get("state") == "trial":
        raise MoteError("refusing to flash: the board's model is still in trial: `mote confirm` or `mote rollback`")
    k = link.request("keys.get", timeout=10)
    if kid in (k.get("revoked") or []):
        raise MoteError(f"refusing to flash: the board has revoked key {kid}")
    if kid not in (k.get("keys") or []):
        raise MoteError(f"refusing to flash: the board does not trust key {kid} (`mote provision` sends it the "
                        f"host's trusted keys)")


def _fmt_model(m) -> str:
    if not m:
        return "none"
    return (f"{m.get('name')} {m.get('version')} (seq {m.get('seq')}, slot {m.get('slot')}, "
            f"{m.get('state', '')}, sha256 {str(m.get('sha256', ''))[:12]})")


@click.command()
@port_option
@ble_option
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-verify", is_flag=True, hidden=True, help="Skip the host-side check (tests of device-side rejection).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the final report as JSON.")
def flash(port, ble, model, no_verify, quiet, as_json):
    """Verify MODEL (a signed .signed file) and flash it into the board's inactive slot.

    The board checks it again (size, SHA-256, signature, key, board, runtime, sequence number), switches
    to it and runs its canary as a trial; a failed trial rolls back. Interrupted transfers resume.
    """
    port = port if ble else need_port(port)
    data = model.read_bytes()
    with user_errors():
        manifest_length(data)
        if not no_verify:
            host_verify(data)
        link = connect(port, ble, hello_timeout=5)
        if not no_verify:
            try:
                board_precheck(link, data)
            except Exception:
                link.close()
                raise

        def reconnect():
            return connect(port, ble, hello_timeout=5, attempts=6)

        fl = None
        try:
            t0 = time.monotonic()
            with Bar(f"uploading {model.name}", len(data), quiet=quiet or as_json) as bar:
                def progress(p):
                    if p.done >= p.total and p.event.startswith(("verifying", "inflating")):
                        bar.update(p.done, label="uploaded; board verifying")   # the bar's last step
                    elif p.event:
                        bar.log(f"# {p.event}")
                    bar.update(p.done, start=p.resumed_from)
                fl = Flasher(link, data, progress=progress, reconnect=reconnect)
                res = fl.run()
            dt = time.monotonic() - t0
        finally:
            try:
                (fl.link if fl is not None else link).close()
            except Exception:
                link.close()
    # the transfer's figures are the bar's: file bytes the board acknowledged over the upload's wall time
    up_s, rate = bar.elapsed(), bar.rate()
    rep = {"bytes": len(data), "seconds": round(dt, 3), "upload_seconds": round(up_s, 3), "rate": round(rate),
           "interruptions": fl.resyncs, **res}
    if as_json:
        click.echo(json.dumps(rep))
    else:
        resumed = f" (resumed at {bar.start} B)" if bar.start else ""
        click.echo(f"uploaded {len(data) - bar.start} B{resumed} in {up_s:.2f} s ({human_rate(rate)}, acknowledged by "
                   f"the board" + (f", {fl.resyncs} interruption(s) resumed" if fl.resyncs else "")
                   + f"); verified and activated: {dt:.2f} s in all")
        click.echo(f"active: {_fmt_model(res.get('active'))}")
    if not res.get("ok"):
        raise click.ClickException(f"the new model did not stay active: {res.get('note')}")


@click.command()
@port_option
@ble_option
@click.option("--json", "as_json", is_flag=True, help="Print the store's status as one JSON object.")
def status(port, ble, as_json):
    """The board's model slots: active/previous, versions, trial or confirmed, anti-rollback floor."""
    with open_link(port, ble=ble) as link, user_errors():
        st = link.request("store.status")
    if as_json:
        emit_json(st)
        return
    from ..show import fields, table
    m = st.get("model")
    rows = [("active", _fmt_model(m) if m else "none: `mote flash MODEL.signed` installs one"),
            ("anti-rollback", f"models with seq > {st.get('floor')} only" if (st.get("floor") or 0) >= 0
             else "no model confirmed yet")]
    if st.get("note"):
        rows.append(("last event", st["note"]))
    if st.get("upload"):
        u = st["upload"]
        rows.append(("upload", f"{u['offset']}/{u['size']} B into slot {u['slot']} (`mote flash` resumes it)"))
    fields(rows)
    click.echo()
    table(["slot", "model", "version", "seq", "role"],
          [(s, d.get("name"), d.get("version"), d.get("seq"), d.get("role") or "-") if d.get("present")
           else (s, "empty", "-", "-", "-") for s, d in sorted(st["slots"].items())])


@click.command()
@port_option
@ble_option
def rollback(port, ble):
    """Switch back to the previous model slot."""
    with open_link(port, ble=ble) as link, user_errors():
        m = link.request("store.rollback", timeout=30)
    click.echo(f"active: {_fmt_model(m)}")


@click.command()
@port_option
@ble_option
def confirm(port, ble):
    """Confirm the model on trial (raises the anti-rollback floor to its sequence number)."""
    with open_link(port, ble=ble) as link, user_errors():
        m = link.request("store.confirm", timeout=30)
    click.echo(f"active: {_fmt_model(m)}")


@click.command()
@port_option
@ble_option
@click.option("--sign", "sign_key", metavar="KEY", default=None,
              help="Send the key list as a statement signed by KEY (a key the board already trusts): a key "
                   "rotation the board takes over any link, BLE included. Without it: serial only.")
@click.option("--seq", type=click.IntRange(min=1), default=None,
              help="With --sign: the statement's sequence number (default: now, in seconds); the board takes "
                   "only a seq above its current one.")
def provision(port, ble, sign_key, seq):
    """Push the host's trusted public keys and revoked kids (`mote keys`) to the board."""
    with user_errors():
        from ..keys import KeystoreError
        try:
            tl = _trust()
        except KeystoreError as e:
            raise MoteError(str(e)) from None
        keys = tl.public_keys()
        if not keys:
            raise MoteError("no trusted keys on this host: `mote keys trust` one first")
        params = {"keys": keys, "revoked": sorted(tl.revoked_kids())}
    if sign_key:
        from ..keys import Keystore
        from ..manifest import sign_key_list
        from .keys import load_private_key
        key = load_private_key(Keystore(), sign_key)
        params = {"signed": sign_key_list(keys, tl.revoked_kids(), seq or int(time.time()), key)}
    with open_link(port, ble=ble) as link, user_errors():
        r = link.request("keys.set", params, timeout=30)
    click.echo(f"board trusts {len(r['keys'])} key(s): {', '.join(r['keys'])}"
               + (f"; revoked: {', '.join(r['revoked'])}" if r["revoked"] else "")
               + (f" (signed key list, seq {r['seq']})" if sign_key else ""))
