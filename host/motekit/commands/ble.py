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
@click.argument("target", metavar="NAME|ADDR")
@click.option("--timeout", "-t", type=float, default=15.0, show_default=True)
@click.option("--adapter", envvar="MOTE_BLE_ADAPTER", default=None, help="BlueZ adapter (e.g. hci0).")
def pair(target, timeout, adapter):
    """Pair and bond with a board (LE Secure Connections), so it accepts state-changing requests over BLE."""
    _need_bleak()
    from ..ble.pairing import pair as do_pair
    with user_errors():
        res = do_pair(target, adapter, timeout)
    if not res.ok:
        raise click.ClickException(res.message)
    click.echo(res.message)
