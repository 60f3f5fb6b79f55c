"""Shared CLI plumbing: open a board by port, turn known failures into one-line errors."""

from __future__ import annotations

import contextlib

import click

from ..link import Link, MoteError
from ..transport import TransportError

port_option = click.option("--port", "-p", envvar="MOTE_PORT", metavar="PORT",
                           help="The board: a serial port, ble:NAME or sim:SEED (or set MOTE_PORT).")
ble_option = click.option("--ble", envvar="MOTE_BLE_TARGET", metavar="NAME|ADDR", default=None,
                          help="Talk to the board over BLE instead: its name, address or device id "
                               "(see `mote scan`).")


@contextlib.contextmanager
def user_errors():
    """Known failures become `Error: <one line>` and exit 1; Ctrl-C exits 130 quietly."""
    try:
        yield
    except (MoteError, TransportError, FileNotFoundError) as e:
        raise click.ClickException(str(e).strip()) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def connect(port: str | None, ble: str | None = None, hello_timeout: float = 3.0, attempts: int = 1) -> Link:
    """A Link to `port` (serial:PORT or PORT, ble:NAME, sim:SEED: motekit.transport.open) or over BLE to `ble`;
    BLE retries `attempts` times with backoff."""
    target = f"ble:{ble}" if ble else need_port(port)
    if target.lower().startswith("ble:"):
        return Link.open(target, hello_timeout=max(hello_timeout, 5.0), attempts=attempts)
    if target.lower().startswith("sim:"):
        hello_timeout = max(hello_timeout, 15.0)     # a virtual board boots for this command
    return Link.open(target, hello_timeout=hello_timeout)


def need_port(port: str | None) -> str:
    if not port:
        raise click.UsageError("which board? give --port PORT (see `mote ports`) or set MOTE_PORT",
                               click.get_current_context(silent=True))
    return port


@contextlib.contextmanager
def open_link(port: str | None, hello_timeout: float = 3.0, ble: str | None = None):
    with user_errors():
        link = connect(port, ble, hello_timeout)
        try:
            yield link
        finally:
            link.close()
