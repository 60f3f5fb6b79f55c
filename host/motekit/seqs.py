"""Anti-rollback sequence numbers a key has signed, kept in the keystore (`keys/seq.json`).

`mote model sign` without `--seq` takes the next number after the highest this key signed for this model
name (1 for the first), so a release never locks out the next one (a Unix-time default did: after it, the
README's `--seq 12` was refused as a rollback). An explicit `--seq` is recorded too; the record only grows.

    {"<kid hex>": {"<model name>": <highest seq>, ...}, ...}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "seq.json"


class SeqError(Exception):
    """The record cannot be read or written (one line)."""


def _path(keystore_dir) -> Path:
    return Path(keystore_dir) / FILE


def _read(keystore_dir) -> dict:
    p = _path(keystore_dir)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SeqError(f"cannot read {p} ({e}): fix it, or give --seq N") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SeqError(f"{p} is not a sequence record (an object of objects): fix it, or give --seq N")
    return data


def highest(keystore_dir, kid: bytes, name: str) -> int | None:
    v = _read(keystore_dir).get(kid.hex(), {}).get(name)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def next_seq(keystore_dir, kid: bytes, name: str) -> int:
    h = highest(keystore_dir, kid, name)
    return 1 if h is None else h + 1


def record(keystore_dir, kid: bytes, name: str, seq: int) -> None:
    """Remember `seq` for (key, name) if it is the highest yet; written atomically, owner-only."""
    data = _read(keystore_dir)
    per = data.setdefault(kid.hex(), {})
    old = per.get(name)
    if isinstance(old, int) and not isinstance(old, bool) and old >= seq:
        return
    per[name] = seq
    p = _path(keystore_dir)
    tmp = p.with_name(FILE + ".tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, p)
    except OSError as e:
        raise SeqError(f"cannot write {p}: {e.strerror}") from None
