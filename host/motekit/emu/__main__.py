"""`python -m motekit.emu prebuild [BOARD ...]`: build (or find in the cache) what the tests and
`mote sim --emulate` run: mpy-cross, the 32-bit unix port and the qemu images of the named boards (default:
every board in boards/ that has an emulated core). Prints NAME=path lines (./dev test exports
MOTEKIT_MICROPYTHON32 from them)."""

import sys

from .. import boards, builds
from . import CORES, mpy_cross, qemu_image, unix32


def main(argv):
    if argv[:1] != ["prebuild"]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        print(f"MOTEKIT_MPY_CROSS={mpy_cross()}")
        print(f"MOTEKIT_MICROPYTHON32={unix32()}")
        seen = set()
        for name in argv[1:] or boards.names():
            try:
                b = boards.load(name)
            except boards.BoardError as e:
                print(e, file=sys.stderr)
                return 2
            key = (b.get("mpy_arch"), b.get("ram", {}).get("heap_bytes"))
            if key[0] in CORES and key not in seen:
                seen.add(key)
                print(f"MOTEKIT_QEMU_{key[0]}_{key[1]}={qemu_image(*key)}")
    except builds.BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    return 0


sys.exit(main(sys.argv[1:]))
