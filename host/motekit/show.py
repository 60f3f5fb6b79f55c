"""Output of the commands a person reads (info, stats, status, ports, keys list): aligned tables (rich) with
labelled rows and units, or, with --json, ONE JSON object for machines (keys sorted, bytes as hex)."""

from __future__ import annotations

import json
import sys

import click


def _print(renderable) -> None:
    from rich.console import Console
    # a pipe or a file gets the table unwrapped (no terminal width to fit), and no padding at line ends
    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)
    with console.capture() as cap:
        console.print(renderable)
    click.echo("\n".join(line.rstrip() for line in cap.get().splitlines()))


def text(v) -> str:
    """A value as a person reads it: no Python reprs, no `None`."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return ", ".join(text(x) for x in v) if v else "-"
    if isinstance(v, dict):
        return ", ".join(f"{k} {text(x)}" for k, x in v.items()) if v else "-"
    return str(v)


def duration_ms(ms) -> str:
    if not isinstance(ms, (int, float)):
        return text(ms)
    s = ms / 1000.0
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fields(rows) -> None:
    """Label / value rows, aligned."""
    from rich.table import Table
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for label, value in rows:
        t.add_row(label, value if isinstance(value, str) else text(value))
    _print(t)


def table(columns, rows) -> None:
    """A table with a header row; numeric columns right-aligned."""
    from rich import box
    from rich.table import Table
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    for i, c in enumerate(columns):
        numeric = rows and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows)
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*(text(x) for x in r))
    _print(t)


def _jsonable(o):
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    raise TypeError(f"{type(o).__name__} is not JSON")


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=_jsonable))
