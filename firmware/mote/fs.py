# Small, crash-safe file helpers for the board's flash.
import os


def replace(src, dst):
    """Atomically move src over dst (littlefs and POSIX replace in one step).

    Two port quirks are handled here so callers need not know them:
    - the unix port's VfsPosix mounted at '/' with a root directory mishandles os.rename when both
      paths are absolute (ENOENT, or a silent no-op when dst exists; MicroPython v1.29-preview):
      with the working directory at '/', dst is passed relative, which means the same on every port;
    - FAT refuses to rename onto an existing file (EEXIST): remove dst first (not atomic there).
    """
    if dst[:1] == "/" and os.getcwd() == "/":
        dst = dst[1:]
    try:
        os.rename(src, dst)
    except OSError as e:
        if not e.args or e.args[0] != 17:      # EEXIST
            raise
        os.remove(dst)
        os.rename(src, dst)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    replace(tmp, path)


def load_json(path, default=None):
    """(value, error): a stored JSON file, or (default, None) when there is none, or (default, "why") when it
    cannot be read or parsed (corrupt, too deeply nested for the port's parser): the caller falls back."""
    import json
    try:
        with open(path) as f:
            return json.load(f), None
    except OSError as e:
        if e.args and e.args[0] == 2:          # ENOENT: nothing stored
            return default, None
        return default, "cannot read %s (%s)" % (path, e)
    except Exception as e:                      # ValueError, RuntimeError (recursion), MemoryError
        return default, "%s is unreadable (%s)" % (path, type(e).__name__)
