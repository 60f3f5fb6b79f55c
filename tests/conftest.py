import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if not os.environ.get("MOTEKIT_MICROPYTHON32"):
    # `./dev test` exports it; a bare pytest finds the same cached 32-bit unix port (building it once, ~1 min,
    # where the toolchain is there), so the viper32-on-a-32-bit-word tests do not quietly skip
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
    try:
        from motekit.builds import BuildError
        from motekit.emu import unix32
        try:
            os.environ["MOTEKIT_MICROPYTHON32"] = str(unix32())
        except BuildError as e:
            print(f"conftest: no 32-bit MicroPython, its tests skip: {str(e).splitlines()[0]}", file=sys.stderr)
    finally:
        sys.path.pop(0)
