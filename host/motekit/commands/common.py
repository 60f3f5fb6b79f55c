"""Shared CLI plumbing: open a board by port, turn known failures into one-line errors."""

from __future__ import annotations

import contextlib

import click

from ..link import Link, MoteError
from ..transport import TransportError

port_option = click.option("--port", "-p", envvar="MOTE_PORT", metavar="PORT",
                           help="Serial port of the board (or set MOTE_PORT).")


@contextlib.contextmanager
def user_errors():
    """Known failures become `Error: <one line>` and exit 1; Ctrl-C exits 130 quietly."""
    try:
        yield
    except (MoteError, TransportError, FileNotFoundError) as e:
        raise click.ClickException(str(e).strip()) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def need_port(port: str | None) -> str:
    if not port:
        raise click.ClickException("which board? give --port PORT (see `mote ports`) or set MOTE_PORT")
    return port


@contextlib.contextmanager
def open_link(port: str | None, hello_timeout: float = 3.0):
    with user_errors():
        link = Link.open(need_port(port), hello_timeout=hello_timeout)
        try:
            yield link
        finally:
            link.close()
