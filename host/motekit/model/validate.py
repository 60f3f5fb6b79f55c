"""The device's own .mtm validator (firmware/mote/mtm_check.py), run on the host.

`mote model convert`, `check` and `sign` load the firmware file itself (not a copy), so the host refuses
exactly what `mote.infer.Model` refuses on the board, with the same one-line message.

    validate_mtm(data: bytes) -> header dict        raises ModelError (mtm_check's class, a ValueError)
"""

from __future__ import annotations

import importlib.util
import struct
import sys
from array import array

import cbor2

from ..paths import firmware_dir

_mod = None


def mtm_check():
    """The firmware's mote.mtm_check module, loaded from its file."""
    global _mod
    if _mod is None:
        path = firmware_dir() / "mote" / "mtm_check.py"
        spec = importlib.util.spec_from_file_location("motekit._mtm_check", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        # the exported models' ops are checked in its companion, which it imports as `mote.mtm_check_ext`
        # (the firmware's own file: motekit.paths.firmware_module)
        from ..paths import firmware_module
        firmware_module("mote.mtm_check_ext")
        _mod = mod
    return _mod


def ModelError():  # noqa: N802  (the class, resolved lazily: `except validate.ModelError()`)
    return mtm_check().ModelError


def validate_mtm(data: bytes) -> dict:
    """Run the device's checks on a whole .mtm file: container, header, every op, the blobs' contents."""
    mc = mtm_check()
    if len(data) < 8 or data[:4] != b"MTM1":
        raise mc.ModelError("not a motekit model (.mtm): it does not start with MTM1")
    n = struct.unpack("<I", data[4:8])[0]
    if not 0 < n <= min(mc.HEADER_MAX, len(data) - 8):
        raise mc.ModelError(f"model header length {n} does not fit the {len(data)}-byte file")
    try:
        h = cbor2.loads(data[8:8 + n])
    except Exception as e:
        raise mc.ModelError(f"model header is not valid CBOR ({e})") from None
    start = (8 + n + 15) // 16 * 16
    mc.check(h, len(data), start)
    blobs = []
    for off, nb, code in h["blobs"]:
        a = array(code)
        a.frombytes(data[start + off:start + off + nb])
        if sys.byteorder != "little":
            a.byteswap()
        blobs.append(a)
    mc.check_blobs(h, blobs)
    return h
