"""Board files: the one place that finds, lists, loads and validates them.

A board is named (`pico_w`: `boards/pico_w.json`, shipped with the package) or given as a path to a JSON file
(`--board ./my_board.json`: a board of your own). Every board is validated against `boards/schema.json`
before anyone uses it, so a typo in a hand-written board file is one line naming the field, not a KeyError
deep inside `mote sim` or `mote power simulate`.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from . import paths

SCHEMA = "schema"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BoardError(FileNotFoundError):
    """An unknown board or an invalid board file (a FileNotFoundError, so every command's one-line error
    handling already covers it)."""


def names() -> list[str]:
    """The shipped boards, sorted."""
    return sorted(p.stem for p in paths.boards_dir().glob("*.json") if p.stem != SCHEMA)


def unknown(name: str) -> BoardError:
    return BoardError(f"unknown board {name!r}: one of {', '.join(names()) or '(none found)'}, "
                      f"or a path to a board file (.json)")


def path(name: str) -> Path:
    """The file of board `name` (a shipped board's name, or a path ending in .json)."""
    if str(name).endswith(".json") and ("/" in str(name) or Path(name).is_file()):
        p = Path(name)
        if not p.is_file():
            raise BoardError(f"no board file {name}")
        return p
    if not _NAME.match(str(name)) or name == SCHEMA:
        raise unknown(str(name))
    p = paths.boards_dir() / f"{name}.json"
    if not p.is_file():
        raise unknown(name)
    return p


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads((paths.boards_dir() / f"{SCHEMA}.json").read_text())


def validate(board, where: str = "board") -> dict:
    """`board` if it follows boards/schema.json, else BoardError naming the first wrong field."""
    try:
        import jsonschema
    except ImportError:      # a core dependency; only a broken environment lacks it
        if not isinstance(board, dict) or not all(k in board for k in schema().get("required", [])):
            raise BoardError(f"{where}: not a board definition (see boards/schema.json)") from None
        return board
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(board))
    if err is not None:
        at = "/".join(str(x) for x in err.absolute_path) or "top level"
        msg = err.message if len(err.message) <= 120 else err.message[:117] + "..."
        raise BoardError(f"{where}: {at}: {msg} (see boards/schema.json)")
    if isinstance(board.get("policy"), dict):
        try:                 # the device's own check (mote.policy.merge), so a board never ships one it refuses
            paths.firmware_module("mote.policy").for_board(board)
        except (ValueError, KeyError, TypeError) as e:
            raise BoardError(f"{where}: policy: {e} (the shape of /policy.json: docs/power.md)") from None
    return board


def load(name: str) -> dict:
    """Board `name` (see `path`), validated."""
    p = path(name)
    try:
        board = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BoardError(f"board file {p}: not readable JSON ({e})") from None
    return validate(board, where=f"board file {p}")


# Only the host reads these (the power simulator's timing, model check's infer figures, the sources and notes
# every figure carries): /board.json leaves them out. The device keeps its board file parsed in RAM for as long
# as it runs: pico_w's whole file cost 13.1 KB of the emulated Pico W's 192 KiB heap, without them 4.5 KB.
HOST_ONLY = ("timing", "infer", "title", "mcu", "note")


def device_file(board: dict) -> dict:
    """The board file as a device reads it (/board.json): without what only the host uses (HOST_ONLY, and every
    `*source` text)."""
    if isinstance(board, dict):
        return {k: device_file(v) for k, v in board.items() if k not in HOST_ONLY and not k.endswith("source")}
    if isinstance(board, list):
        return [device_file(x) for x in board]
    return board
