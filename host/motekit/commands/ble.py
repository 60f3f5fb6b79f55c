"""`mote scan` and `mote pair`: boards over Bluetooth LE (bleak on BlueZ / CoreBluetooth / WinRT)."""

from __future__ import annotations

import json

import click

from .common import user_errors


def _need_bleak():
    try:
        import bleak  # noqa: F401
    except ImportError:
        raise click.ClickException("BLE needs the `ble` extra: pip install 'motekit[ble]'") from None


@click.command()
@click.option("--timeout", "-t", type=float, default=5.0, show_default=True, help="Seconds to listen.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per board.")
@click.option("--all", "all_devices", is_flag=True, help="List every advertiser, not only motekit boards.")
@click.option("--adapter", envvar="MOTE_BLE_ADAPTER", default=None, help="BlueZ adapter (e.g. hci0).")
def scan(timeout, as_json, all_devices, adapter):
    """List BLE boards in range: name, address, RSSI and their advertised battery and status."""
    _need_bleak()
    from ..ble.transport import scan as do_scan
    with user_errors():
        found = do_scan(timeout, adapter, all_devices=all_devices)
    if as_json:
        for f in found:
            click.echo(json.dumps(f.to_json()))
        return
    if not found:
        click.echo(f"no motekit boards advertising within {timeout:g} s", err=True)
        return
    for f in found:
        m = f.mote
        bat = "?" if not m or m.soc is None else f"{m.soc}%"
        flags = ",".join(m.flags) if m else ""
        rssi = "" if f.rssi is None else f"{f.rssi} dBm"
        click.echo(f"{f.address}  {f.name or '?':14} {rssi:>8}  battery {bat:>4}  "
                   f"{'id=' + m.device if m else ''}  {flags}".rstrip())


@click.command()
@click.argument("target", metavar="[NAME|ADDR]", required=False)
@click.option("--port", "-p", envvar="MOTE_PORT", metavar="PORT", default=None,
              help="Open the board's pairing window over this serial port first (the board bonds only then).")
@click.option("--seconds", type=click.IntRange(0, 300), default=60, show_default=True,
              help="With --port: how long the window stays open (0 closes it).")
@click.option("--clear", is_flag=True, help="With --port: forget every bond the board keeps first.")
@click.option("--watch", is_flag=True, help="With --port: stay until the window closes, printing the passkey a "
                                            "board with a display (board file ble.io) shows for the gateway.")
@click.option("--timeout", "-t", type=float, default=15.0, show_default=True)
@click.option("--adapter", envvar="MOTE_BLE_ADAPTER", default=None, help="BlueZ adapter (e.g. hci0).")
def pair(target, port, seconds, clear, watch, timeout, adapter):
    """Bond a gateway with a board: `--port P` opens the board's pairing window over USB serial (bonds are
    refused outside it); NAME|ADDR then pairs this machine with it over BLE (LE Secure Connections)."""
    if not port and not target:
        raise click.ClickException("give --port PORT (open the board's pairing window) and/or the board's "
                                   "NAME|ADDR (pair this machine with it over BLE)")
    if port:
        from ..link import Link
        with user_errors():
            link = Link.open(port, hello_timeout=3.0)
            try:
                r = link.request("ble.pair", {"seconds": seconds, "clear": clear}, timeout=5)
                if r.get("note"):
                    click.echo(f"{link.device}: {r['note']}")
                elif seconds:
                    click.echo(f"{link.device}: pairing window open for {seconds} s "
                               f"({r['bonds']} of {r['max_bonds']} bonds used"
                               + (", passkey entry" if r.get("io") == "display" else ", Just Works") + ")"
                               + ("; the board is full: --clear forgets every bond" if r["bonds"] >= r["max_bonds"]
                                  else ""))
                else:
                    click.echo(f"{link.device}: pairing window closed ({r['bonds']} bonds)")
                if watch and seconds and not target:
                    import time
                    end = time.monotonic() + seconds
                    while time.monotonic() < end:
                        from ..protocol import T
                        f = link.next_frame(0.5, want={T.LOG})
                        msg = bytes(f.payload).decode(errors="replace") if f is not None else ""
                        if "passkey" in msg:
                            click.echo(msg)
            finally:
                link.close()
    if not target:
        return
    _need_bleak()
    from ..ble.pairing import pair as do_pair
    with user_errors():
        res = do_pair(target, adapter, timeout)
    if not res.ok:
        raise click.ClickException(res.message)
    click.echo(res.message)
