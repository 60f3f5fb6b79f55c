"""Ed25519 signing keys and the host-side trust list.

Layout (the keystore directory, default ``~/.config/motekit/keys``; with ``MOTEKIT_HOME`` set it
is ``$MOTEKIT_HOME/keys``)::

    NAME.key     private key, PKCS#8 PEM (optionally passphrase-encrypted), mode 0600
    NAME.pub     public key, SubjectPublicKeyInfo PEM
    trust.json   {"version": 1,
                  "trusted": {KID_HEX: {"name": str, "public_key": RAW_32_BYTES_HEX, "added": ISO}},
                  "revoked": {KID_HEX: {"name": str, "revoked": ISO}}}

A key id (kid) is the first 8 bytes of SHA-256 of the raw 32-byte public key; it goes in the
COSE protected header, and devices look the verification key up by it. Revocation is permanent:
a revoked kid cannot be trusted again (sign with a new key instead).

Every failure a user can cause raises :class:`KeystoreError` with a one-line message.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KID_LEN = 8
TRUST_FILE = "trust.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeystoreError(Exception):
    """A user-facing problem with keys or the trust list (the message is one line)."""


def check_private_file(path: Path) -> None:
    """Like ssh: refuse a private key that is a symlink or that group/other may read or write."""
    try:
        st = os.lstat(path)
    except OSError:
        return                       # reading it fails with its own message
    if stat.S_ISLNK(st.st_mode):
        raise KeystoreError(f"private key {path} is a symlink: refusing it (whoever controls the link chooses the "
                            f"key); use the file itself: cp --dereference {path} {path}.real && mv {path}.real {path}")
    if os.name != "nt" and st.st_mode & 0o077:
        raise KeystoreError(f"private key {path} is accessible by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                            f"chmod 600 {path}")


_warned: set = set()


def warn_if_writable(path: Path) -> None:
    """A trust list (or its directory) anyone may write lets anyone add a key: say so once per file."""
    if os.name == "nt" or str(path) in _warned:
        return
    for p in (path, path.parent):
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        if mode & 0o002 and not (p == path.parent and mode & stat.S_ISVTX):
            _warned.add(str(path))
            import sys
            print(f"warning: {'trust list' if p == path else 'the directory of trust list'} {p} is writable by "
                  f"everyone (mode {stat.S_IMODE(mode):04o}): chmod o-w {p}", file=sys.stderr)
            return


def home_dir() -> Path:
    env = os.environ.get("MOTEKIT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".config" / "motekit"


def keys_dir() -> Path:
    return home_dir() / "keys"


def raw_public(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def kid_of(key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> bytes:
    """Key id: the first 8 bytes of SHA-256 of the raw public key."""
    raw = key if isinstance(key, (bytes, bytearray)) else raw_public(key)
    return hashlib.sha256(bytes(raw)).digest()[:KID_LEN]


def public_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _is_small_order(raw: bytes) -> bool:
    """Reject the 8 torsion points (and their non-canonical encodings) as public keys."""
    # the 32-byte encodings of the points of order 1, 2, 4, 8 (from libsodium's blocklist);
    # the top bit (x sign) is ignored, and y >= p aliases are covered by reducing y mod p
    p = 2**255 - 19
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    y %= p
    small = {
        0, 1, p - 1,
        0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7,
        0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826,
    }
    return y in small


def load_public_pem(data: bytes, what: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise KeystoreError(f"{what} is not a PEM public key (expected SubjectPublicKeyInfo, "
                            "as written by `mote keys export-public`)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeystoreError(f"{what} is not an Ed25519 key (motekit signs with Ed25519 only)")
    return key


@dataclass
class KeyInfo:
    name: str
    kid: bytes
    encrypted: bool
    path: Path

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()


class TrustList:
    """Trusted public keys by kid, plus revoked kids. Saved as JSON (see module doc)."""

    def __init__(self, trusted: dict[bytes, tuple[str, bytes, str]] | None = None,
                 revoked: dict[bytes, tuple[str, str]] | None = None, path: Path | None = None):
        self.trusted = dict(trusted or {})  # kid -> (name, raw public key, added)
        self.revoked = dict(revoked or {})  # kid -> (name, revoked at)
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike, missing_ok: bool = False) -> TrustList:
        path = Path(path)
        warn_if_writable(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            if missing_ok:
                return cls(path=path)
            raise KeystoreError(f"trust list {path} not found (create it with `mote keys trust`)") from None
        except (OSError, ValueError) as e:
            raise KeystoreError(f"trust list {path} is unreadable ({e.__class__.__name__}): "
                                "fix or remove it and re-run `mote keys trust`") from None
        try:
            if doc.get("version") != 1:
                raise ValueError("version")
            trusted = {}
            for kid_hex, ent in doc.get("trusted", {}).items():
                raw = bytes.fromhex(ent["public_key"])
                kid = bytes.fromhex(kid_hex)
                if len(raw) != 32 or kid_of(raw) != kid:
                    raise ValueError("kid")
                trusted[kid] = (str(ent.get("name", "")), raw, str(ent.get("added", "")))
            revoked = {}
            rev = doc.get("revoked", {})
            if isinstance(rev, list):
                rev = {k: {} for k in rev}
            for kid_hex, ent in rev.items():
                revoked[bytes.fromhex(kid_hex)] = (str(ent.get("name", "")), str(ent.get("revoked", "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(f"trust list {path} is malformed: fix or remove it and re-run "
                                "`mote keys trust`") from None
        return cls(trusted, revoked, path)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        path = Path(path or self.path)
        doc = {
            "version": 1,
            "trusted": {k.hex(): {"name": n, "public_key": raw.hex(), "added": t}
                        for k, (n, raw, t) in sorted(self.trusted.items())},
            "revoked": {k.hex(): {"name": n, "revoked": t} for k, (n, t) in sorted(self.revoked.items())},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
        self.path = path
        return path

    def add(self, key: Ed25519PublicKey | bytes, name: str = "") -> bytes:
        raw = key if isinstance(key, (bytes, bytearray)) else raw_public(key)
        raw = bytes(raw)
        if _is_small_order(raw):
            raise KeystoreError("refusing to trust a small-order public key (it would accept forged signatures)")
        kid = kid_of(raw)
        if kid in self.revoked:
            raise KeystoreError(f"kid {kid.hex()} is revoked and cannot be trusted again: "
                                "generate a new key with `mote keys generate`")
        if kid not in self.trusted:
            self.trusted[kid] = (name, raw, _now())
        return kid

    def revoke(self, kid: bytes, name: str = "") -> None:
        ent = self.trusted.pop(kid, None)
        if ent and not name:
            name = ent[0]
        if kid not in self.revoked:
            self.revoked[kid] = (name, _now())

    def public_keys(self) -> dict[bytes, bytes]:
        """kid -> raw 32-byte public key, revoked kids excluded (what a device is provisioned with)."""
        return {k: raw for k, (_, raw, _) in self.trusted.items() if k not in self.revoked}

    def revoked_kids(self) -> set[bytes]:
        return set(self.revoked)


class Keystore:
    """A directory of named Ed25519 keys plus trust.json."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else keys_dir()

    # -- names and files
    @staticmethod
    def check_name(name: str) -> str:
        if not _NAME_RE.match(name or ""):
            raise KeystoreError(f"bad key name {name!r}: use letters, digits, '.', '_' or '-' (max 64)")
        return name

    def key_path(self, name: str) -> Path:
        return self.path / f"{self.check_name(name)}.key"

    def pub_path(self, name: str) -> Path:
        return self.path / f"{self.check_name(name)}.pub"

    @property
    def trust_path(self) -> Path:
        return self.path / TRUST_FILE

    # -- keys
    def generate(self, name: str, passphrase: str | bytes | None = None) -> KeyInfo:
        kpath = self.key_path(name)
        if kpath.exists():
            raise KeystoreError(f"key {name!r} already exists ({kpath}); pick another name")
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.path, 0o700)
        except OSError:
            pass
        key = Ed25519PrivateKey.generate()
        if passphrase:
            pw = passphrase.encode() if isinstance(passphrase, str) else passphrase
            enc = serialization.BestAvailableEncryption(pw)
        else:
            enc = serialization.NoEncryption()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, pem)
        finally:
            os.close(fd)
        self.pub_path(name).write_bytes(public_pem(key))
        return KeyInfo(name, kid_of(key), bool(passphrase), kpath)

    def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.stem for p in self.path.glob("*.key") if _NAME_RE.match(p.stem))

    def info(self, name: str) -> KeyInfo:
        kpath = self.key_path(name)
        try:
            kid = kid_of(self.public_key(name))
        except KeystoreError:  # NAME.pub lost and NAME.key encrypted: kid unknown without the passphrase
            kid = b""
        encrypted = b"ENCRYPTED" in kpath.read_bytes()[:64]
        return KeyInfo(name, kid, encrypted, kpath)

    def list(self) -> list[KeyInfo]:
        return [self.info(n) for n in self.names()]

    def is_encrypted(self, ref: str) -> bool:
        path = self._private_path(ref)
        try:
            return b"ENCRYPTED" in path.read_bytes()[:64]
        except OSError:
            return False

    def _private_path(self, ref: str) -> Path:
        p = Path(ref)
        if _NAME_RE.match(ref) and (self.key_path(ref).exists() or self.key_path(ref).is_symlink()):
            return self.key_path(ref)
        if p.is_file() or p.is_symlink():
            return p
        raise KeystoreError(f"no key {ref!r}: not a key in {self.path} nor a file "
                            "(see `mote keys list`, or create one with `mote keys generate NAME`)")

    def private_key(self, ref: str, passphrase: str | bytes | None = None) -> Ed25519PrivateKey:
        """Load a private key by keystore name or PEM file path."""
        path = self._private_path(ref)
        check_private_file(path)
        data = path.read_bytes()
        pw = passphrase.encode() if isinstance(passphrase, str) else passphrase
        try:
            key = serialization.load_pem_private_key(data, password=pw or None)
        except TypeError:
            if pw:
                raise KeystoreError(f"key {ref!r} is not encrypted: do not give a passphrase") from None
            raise KeystoreError(f"key {ref!r} is passphrase-protected: give its passphrase "
                                "(prompt, or MOTEKIT_KEY_PASSPHRASE)") from None
        except ValueError:
            if pw and b"ENCRYPTED" in data[:64]:
                raise KeystoreError(f"wrong passphrase for key {ref!r}") from None
            raise KeystoreError(f"{path} is not a PEM private key") from None
        except UnsupportedAlgorithm:
            raise KeystoreError(f"{path} is not an Ed25519 private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeystoreError(f"{path} is not an Ed25519 private key (motekit signs with Ed25519 only)")
        return key

    def public_key(self, ref: str) -> Ed25519PublicKey:
        """A public key by keystore name, or from a PEM file (public or unencrypted private key)."""
        if _NAME_RE.match(ref) and self.pub_path(ref).exists():
            return load_public_pem(self.pub_path(ref).read_bytes(), f"{self.pub_path(ref)}")
        if _NAME_RE.match(ref) and self.key_path(ref).exists():
            return self.private_key(ref).public_key()
        p = Path(ref)
        if not p.is_file():
            raise KeystoreError(f"no key {ref!r}: not a key in {self.path} nor a file (see `mote keys list`)")
        data = p.read_bytes()
        if b"PRIVATE KEY" in data:
            return self.private_key(ref).public_key()
        return load_public_pem(data, str(p))

    def export_public(self, name: str) -> bytes:
        return public_pem(self.public_key(name))

    # -- trust list
    def trust_list(self) -> TrustList:
        return TrustList.load(self.trust_path, missing_ok=True)

    def resolve_kid(self, ref: str) -> tuple[bytes, str]:
        """A kid from a 16-hex-digit kid, a keystore name, a trusted key's name, or a PEM file."""
        tl = self.trust_list()
        if re.fullmatch(r"[0-9a-fA-F]{16}", ref):
            return bytes.fromhex(ref), ""
        if _NAME_RE.match(ref) and (self.pub_path(ref).exists() or self.key_path(ref).exists()):
            return kid_of(self.public_key(ref)), ref
        for kid, (n, _, _) in tl.trusted.items():
            if n and n == ref:
                return kid, n
        if Path(ref).is_file():
            return kid_of(self.public_key(ref)), Path(ref).stem
        raise KeystoreError(f"no key {ref!r}: give a kid (16 hex digits), a key name or a PEM file")
