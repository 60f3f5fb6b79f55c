"""Interpreters and tools built from pinned source, cached outside the checkout.

Some of what motekit runs is not on PyPI: MicroPython's qemu and 32-bit unix ports, mpy-cross for a
board's arch, CircuitPython's unix port. They are built from a pinned source tree, once, into
``~/.cache/motekit/build/NAME-KEY/`` (``MOTEKIT_BUILD_CACHE`` overrides the root), where KEY hashes the
source's identity and the recipe. A file lock makes concurrent builders (pytest workers, two sims) wait
for one build instead of racing.

Sources, by kind (``micropython``, ``circuitpython``): the directory or ``.tar.gz`` named by the
environment (``MICROPY_SRC``, ``CIRCUITPY_SRC``: a checkout of the pinned tag), else the archive beside
the checkout in ``../shared/KIND/``. A source tarball is unpacked once into the cache.

A recipe is ``fn(src: Path, out: Path) -> None`` that leaves its products under ``out``; the build runs in
a temporary directory that is renamed into place only when ``fn`` returns, so a failed or killed build
leaves nothing half-made behind. ``fn`` must not write into ``src`` (shared by every recipe,
and perhaps a user's checkout): copy what it builds, or send the build's outputs under ``out``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from .paths import shared_dir

SOURCE_ENV = {"micropython": "MICROPY_SRC", "circuitpython": "CIRCUITPY_SRC"}


class BuildError(RuntimeError):
    """A one-line reason a build could not be made (no source, no toolchain, the build failed)."""


def cache_root() -> Path:
    env = os.environ.get("MOTEKIT_BUILD_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "motekit" / "build"


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (created if needed), held for the with-block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _digest_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_archive_or_dir(kind: str) -> Path:
    """Where the source of ``kind`` comes from: the environment's checkout/archive, else ../shared/KIND/*.tar.gz."""
    var = SOURCE_ENV[kind]
    env = os.environ.get(var)
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise BuildError(f"{var}={env} does not exist: point it at a {kind} checkout or source .tar.gz")
        return p
    d = shared_dir() / kind
    found = sorted(d.glob("*.tar.gz")) if d.is_dir() else []
    if not found:
        raise BuildError(f"no {kind} source: set {var} to a checkout of the pinned tag (see README, 'Built from source')")
    return found[-1]


def source_key(p: Path) -> str:
    """A short identity for a source: the archive's SHA-256, or a checkout's git HEAD (else its path)."""
    if p.is_file():
        return _digest_file(p)[:16]
    head = p / ".git" / "HEAD"
    ident = str(p.resolve())
    if head.exists():
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            rp = p / ".git" / ref[5:]
            ref = rp.read_text().strip() if rp.exists() else ref
        ident += ":" + ref
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def source(kind: str) -> Path:
    """The source tree of ``kind`` as a directory (an archive is unpacked once into the cache)."""
    p = source_archive_or_dir(kind)
    if p.is_dir():
        return p
    dest = cache_root() / "src" / f"{kind}-{source_key(p)}"
    if dest.is_dir():
        return _single_top(dest)
    with locked(cache_root() / "src" / f".{kind}.lock"):
        if not dest.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=dest.parent))
            try:
                with tarfile.open(p) as tf:
                    tf.extractall(tmp, filter="data")
                tmp.rename(dest)
            except (OSError, tarfile.TarError) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise BuildError(f"cannot unpack {p}: {e}") from None
    return _single_top(dest)


def _single_top(d: Path) -> Path:
    """An archive holding one top-level folder: that folder; else the unpacked root."""
    entries = [e for e in d.iterdir() if not e.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else d


def build(name: str, kind: str, recipe_version: str, fn: Callable[[Path, Path], None]) -> Path:
    """The cached product directory of recipe ``name`` (version ``recipe_version``) on the source of ``kind``.

    Built once per (source, recipe); concurrent callers wait for the first one. Raises BuildError.
    """
    src_path = source_archive_or_dir(kind)
    key = hashlib.sha256(f"{source_key(src_path)}|{name}|{recipe_version}".encode()).hexdigest()[:12]
    out = cache_root() / f"{name}-{key}"
    if (out / ".done").exists():
        return out
    with locked(cache_root() / f".{name}-{key}.lock"):
        if (out / ".done").exists():
            return out
        src = source(kind)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root()))
        try:
            fn(src, tmp)
            (tmp / ".done").write_text(f"{name} {recipe_version} {src_path}\n")
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out
