# Small, crash-safe file helpers for the board's flash.
import os


def replace(src, dst):
    """Atomically move src over dst (littlefs and POSIX replace in one step).

    Two port quirks are handled here so callers need not know them:
    - FAT refuses to rename onto an existing file (EEXIST): remove dst first (not atomic there);
    - the unix port's VfsPosix mounted at '/' with a root directory fails os.rename when both paths
      are absolute (ENOENT, MicroPython v1.29-preview): retry with dst relative to '/'.
    """
    try:
        os.rename(src, dst)
        return
    except OSError as e:
        err = e.args[0] if e.args else 0
    if err == 17:        # EEXIST
        os.remove(dst)
        os.rename(src, dst)
        return
    if dst.startswith("/") and os.getcwd() == "/":
        os.rename(src, dst[1:])
        return
    raise OSError(err)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    replace(tmp, path)
