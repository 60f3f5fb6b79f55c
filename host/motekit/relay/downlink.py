"""What the relay forwards from `PREFIX/DEVICE/cmd` to a board, and how each command is checked.

Whoever may publish on `+/cmd` at the broker speaks to the boards with the gateway's own trust (a relay on USB
serial is the board's most trusted link), so the downlink is read-only by default: the device requests the
declaration marks RELAY (`motekit.protocol.REQUESTS`, mirrored from firmware/mote/requests.py) plus the relay's
own `ping` and `status`. `--allow-cmd a,b` (or `allow_cmd` in the config file) adds declared requests; `repl`
never (it would park the board at its REPL for good). Every command is checked before it reaches a board:
a bounded payload, `id` a short string or integer, `params` JSON of bounded size and depth, `timeout` a
number in (0, MAX_TIMEOUT]. Each refusal is one line on `…/cmd/response`.
"""

from __future__ import annotations

import json

from ..protocol import REQUESTS, relay_default_methods

LOCAL = ("ping", "status")          # answered by the relay (status: info + stats, read-only)
NEVER = ("repl",)
MAX_PAYLOAD = 32768                 # bytes of a cmd message
MAX_PARAMS = 16384                  # bytes of params, as JSON
MAX_DEPTH = 8                       # nesting of params
MAX_TIMEOUT = 120.0
DEFAULT_TIMEOUT = 3.0


class CommandError(Exception):
    """A command the relay does not forward (the message is one line)."""


def parse_allow(values) -> set[str]:
    """--allow-cmd values (comma-separated, repeatable) -> the extra methods; raises ValueError (one line)."""
    out: set[str] = set()
    for v in values or ():
        for m in str(v).split(","):
            m = m.strip()
            if not m:
                continue
            if m in NEVER:
                raise ValueError(f"--allow-cmd {m}: never forwarded (it would leave the board at its REPL "
                                 "until someone with the cable resets it)")
            if m not in REQUESTS:
                raise ValueError(f"--allow-cmd {m}: not a device request (known: {', '.join(sorted(REQUESTS))})")
            out.add(m)
    return out


def forwarded(extra=()) -> set[str]:
    return relay_default_methods() | set(extra) | set(LOCAL)


def _depth(x, n=0) -> int:
    if n > MAX_DEPTH:
        return n
    if isinstance(x, dict):
        return max([_depth(v, n + 1) for v in x.values()] or [n + 1])
    if isinstance(x, list):
        return max([_depth(v, n + 1) for v in x] or [n + 1])
    return n


def parse(payload: bytes, allowed: set[str]) -> dict:
    """A cmd message -> {"id", "method", "params", "timeout"}; raises CommandError with the reason."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"command is {len(payload)} bytes: at most {MAX_PAYLOAD}")
    try:
        req = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise CommandError('a command is JSON {"id": .., "method": "..", "params": .., "timeout": s}') from None
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        raise CommandError('a command is {"id": .., "method": "..", "params": .., "timeout": s}')
    return check(req, allowed)


def check(req: dict, allowed: set[str]) -> dict:
    rid = req.get("id")
    if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool)) or
            (isinstance(rid, str) and len(rid) <= 64)):
        raise CommandError("id must be an integer or a string of at most 64 characters")
    method = req.get("method")
    if not isinstance(method, str) or len(method) > 64:
        raise CommandError("method must be a request name")
    if method in NEVER:
        raise CommandError(f"{method} is never forwarded by the relay")
    if method not in allowed:
        if method in REQUESTS:
            raise CommandError(f"{method} is not forwarded: this relay's downlink is read-only "
                               f"(start it with --allow-cmd {method})")
        raise CommandError(f"unknown method {method}")
    params = req.get("params")
    text = json.dumps(params)
    if len(text) > MAX_PARAMS:
        raise CommandError(f"params are {len(text)} bytes of JSON: at most {MAX_PARAMS}")
    if _depth(params) > MAX_DEPTH:
        raise CommandError(f"params nest deeper than {MAX_DEPTH} levels")
    timeout = req.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise CommandError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
    return {"id": rid, "method": method, "params": params, "timeout": float(timeout)}
