"""`mote install`: put the motekit firmware on a (stock MicroPython) board over its REPL."""

from __future__ import annotations

import json

import click

from .common import need_port, port_option, user_errors


@click.command()
@port_option
@click.option("--board", "-b", required=True, help="Board name (e.g. pico_w, sim; see boards/) or a board file (.json).")
@click.option("--source", is_flag=True, help="Copy .py sources instead of compiling to .mpy with mpy-cross.")
@click.option("--no-keys", is_flag=True, help="Leave the board's /keys.json alone (default: the host's trust list).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the hello after the reset.")
@click.option("--quiet", "-q", is_flag=True, help="No progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def install(port, board, source, no_keys, timeout, quiet, as_json):
    """Install the firmware on the board at PORT: compile it for the board's architecture (mpy-cross),
    copy it with the board file and the trusted keys over the raw REPL (mpremote), verify every file's
    SHA-256, soft-reset and wait for the hello.

    Works on a board at its REPL (a fresh MicroPython board) and on one running motekit (upgrade).
    """
    from ..install import Installer

    port = need_port(port)
    quiet = quiet or as_json

    def log(msg):
        if not quiet:
            click.echo(f"# {msg}", err=True)

    with user_errors():
        from .. import boards
        boards.load(board)            # a wrong board name is one line before anything opens the port
        if quiet:
            res = Installer(port, board, source=source, keys=not no_keys, hello_timeout=timeout, log=log).run()
        else:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            console = Console(stderr=True)
            with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                          console=console, transient=True, disable=not console.is_terminal) as bar:
                task = bar.add_task("writing", total=None)

                def progress(done, total, what):
                    bar.update(task, completed=done, total=total, description=f"writing {what:<28.28}")

                res = Installer(port, board, source=source, keys=not no_keys, hello_timeout=timeout,
                                log=lambda m: bar.console.print(f"# {m}", markup=False, highlight=False),
                                progress=progress).run()
    if as_json:
        click.echo(json.dumps(res))
        return
    kind = f".mpy for {res['arch']}" if res["compiled"] else ".py sources"
    click.echo(f"installed {res['files']} files ({res['bytes']} B, {kind}) on {port} in {res['seconds']:.1f} s; "
               f"all verified (size + SHA-256)")
    for s in res["skipped"]:
        click.echo(f"  left out: {s}")
    if res["removed"]:
        click.echo(f"  removed stale: {', '.join(res['removed'])}")
    click.echo("hello: " + json.dumps(res["hello"]))
