"""Where the firmware tree and board files live.

Installed from a wheel they are package data (`motekit/_data/firmware`, `motekit/_data/boards`, put there by
setup.py's build step); in a checkout (an editable install, `./dev`) they are the repository's `firmware/` and
`boards/`. MOTEKIT_FIRMWARE / MOTEKIT_BOARDS override both.
"""

import importlib
import os
import sys
import threading
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "_data"
REPO = PACKAGE.parents[1]          # the checkout, when there is one (host/motekit -> .)


def _find(name: str, env: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    packaged = DATA / name
    return packaged if packaged.is_dir() else REPO / name


def firmware_dir() -> Path:
    return _find("firmware", "MOTEKIT_FIRMWARE")


def boards_dir() -> Path:
    return _find("boards", "MOTEKIT_BOARDS")


def shared_dir() -> Path:
    """Public test vectors, beside the checkout (../shared)."""
    return Path(os.environ.get("MOTEKIT_SHARED", REPO.parent / "shared"))


_IMPORTING = threading.Lock()


def firmware_module(name: str):
    """Import a pure firmware module (e.g. "mote.motion") into this process: the host's tools run the
    board's own code (its synthetic accelerometer) rather than a copy of it. Thread-safe: a second thread
    waits for the first one's import (tools/bench_power.py loads boards from a thread pool) instead of
    getting a half-initialised module."""
    with _IMPORTING:
        if name in sys.modules:
            return sys.modules[name]
        sys.path.insert(0, str(firmware_dir()))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.pop(0)
