# The virtual board's "ROM", run by the micropython (or circuitpython) unix port before the firmware:
# mount the board's flash directory at / (so firmware file writes stay in it), set the import path as
# on a board, then run main.py the way a board does after boot. CircuitPython has no `vfs` module (its
# boards mount with `storage`); its unix port keeps os.mount/os.VfsPosix, which the ROM uses there.
import os
import sys
try:
    import vfs
except ImportError:
    vfs = os

flash = os.getenv("MOTE_FLASH")
if flash:
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(flash), "/")
    os.chdir("/")
sys.path[:] = ["", "/lib", "/"]
del flash, vfs
if os.getenv("MOTE_NO_MAIN") != "1":
    try:
        os.stat("/main.py")
        exec(open("/main.py").read(), {"__name__": "__main__"})
    except OSError:
        print("no main.py on the board's flash")
