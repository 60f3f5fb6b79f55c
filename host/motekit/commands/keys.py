"""`mote keys ...`: Ed25519 signing keys and the trust list that devices are provisioned with."""

from __future__ import annotations

import os
from pathlib import Path

import click

PASSPHRASE_ENV = "MOTEKIT_KEY_PASSPHRASE"


def signing_lib():
    """motekit.keys, imported on use: `mote` itself must start without the 'signing' extra."""
    try:
        from .. import keys as lib
    except ImportError as e:
        raise click.ClickException(f"signing needs the cryptography package: pip install 'motekit[signing]' "
                                   f"({e})") from None
    return lib


def get_passphrase(prompt: str, confirm: bool = False) -> str:
    """The key passphrase from MOTEKIT_KEY_PASSPHRASE, else asked for (hidden)."""
    pw = os.environ.get(PASSPHRASE_ENV)
    if pw is None:
        try:
            pw = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, default="",
                              show_default=False)
        except click.Abort:  # end of input: nobody to ask
            raise click.ClickException(f"no passphrase given (type it, or set {PASSPHRASE_ENV})") from None
    if not pw:
        raise click.ClickException(f"empty passphrase (type one, or set {PASSPHRASE_ENV})")
    return pw


def load_private_key(store, ref: str):
    """Load a signing key by name or path, asking for its passphrase only if it is encrypted."""
    lib = signing_lib()
    try:
        pw = get_passphrase(f"Passphrase for key {ref}") if store.is_encrypted(ref) else None
        return store.private_key(ref, pw)
    except lib.KeystoreError as e:
        raise click.ClickException(str(e)) from None


@click.group()
def keys():
    """Ed25519 signing keys and the trust list (keystore: $MOTEKIT_HOME/keys, default ~/.config/motekit/keys)."""


@keys.command("generate")
@click.argument("name")
@click.option("--encrypt", "-e", is_flag=True,
              help=f"protect the private key with a passphrase (asked for, or ${PASSPHRASE_ENV})")
@click.option("--trust/--no-trust", "trust_it", default=False, show_default=True,
              help="also add the new public key to the trust list")
def generate_cmd(name, encrypt, trust_it):
    """Create a new Ed25519 key pair NAME (private key file mode 0600)."""
    lib = signing_lib()
    store = lib.Keystore()
    try:
        lib.Keystore.check_name(name)
        if store.key_path(name).exists():
            raise lib.KeystoreError(f"key {name!r} already exists ({store.key_path(name)}); pick another name")
        pw = get_passphrase(f"Passphrase for new key {name}", confirm=True) if encrypt else None
        info = store.generate(name, pw)
        if trust_it:
            tl = store.trust_list()
            tl.add(store.public_key(name), name)
            tl.save()
    except lib.KeystoreError as e:
        raise click.ClickException(str(e)) from None
    extra = ", encrypted" if info.encrypted else ""
    click.echo(f"generated {name}: kid {info.kid_hex}{extra} ({info.path})")
    if not trust_it:
        click.echo(f"trust it for verification with: mote keys trust {name}")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the keystore and its keys.")
def list_cmd(as_json):
    """Keys in the keystore and the trust list."""
    lib = signing_lib()
    store = lib.Keystore()
    try:
        infos = store.list()
        tl = store.trust_list()
    except lib.KeystoreError as e:
        raise click.ClickException(str(e)) from None
    rows = []
    for i in infos:
        status = "revoked" if i.kid in tl.revoked else "trusted" if i.kid in tl.trusted else "untrusted"
        rows.append({"name": i.name, "kid": i.kid_hex, "kind": "encrypted" if i.encrypted else "plain",
                     "status": status})
    mine = {i.kid for i in infos}
    for kid, (n, _, added) in sorted(tl.trusted.items()):
        if kid not in mine:
            rows.append({"name": n or None, "kid": kid.hex(), "kind": "public", "status": "trusted"})
    for kid, (n, _) in sorted(tl.revoked.items()):
        if kid not in mine:
            rows.append({"name": n or None, "kid": kid.hex(), "kind": "public", "status": "revoked"})
    from ..show import emit_json, table
    if as_json:
        emit_json({"keystore": str(store.path), "keys": rows})
        return
    if not rows:
        click.echo(f"no keys in {store.path} (create one with `mote keys generate NAME`)")
        return
    table(["name", "kid", "kind", "status"], [(r["name"], r["kid"], r["kind"], r["status"]) for r in rows])


@keys.command("export-public")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="PEM file to write (default: stdout)")
def export_public_cmd(name, output):
    """Write NAME's public key as PEM (SubjectPublicKeyInfo)."""
    lib = signing_lib()
    store = lib.Keystore()
    try:
        pem = store.export_public(name)
    except lib.KeystoreError as e:
        raise click.ClickException(str(e)) from None
    if output:
        try:
            Path(output).write_bytes(pem)
        except OSError as e:
            raise click.ClickException(f"cannot write {output}: {e.strerror}") from None
        click.echo(f"wrote {output} (kid {lib.kid_of(lib.load_public_pem(pem)).hex()})")
    else:
        click.echo(pem.decode(), nl=False)


@keys.command("trust")
@click.argument("key")
@click.option("--name", "label", help="label for the key in the trust list (default: key or file name)")
def trust_cmd(key, label):
    """Trust KEY (a keystore name, or a public-key PEM file) for verifying models."""
    lib = signing_lib()
    store = lib.Keystore()
    try:
        pub = store.public_key(key)
        tl = store.trust_list()
        kid = tl.add(pub, label or Path(key).stem)
        tl.save()
    except lib.KeystoreError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"trusted kid {kid.hex()} ({label or Path(key).stem}) in {store.trust_path}")


@keys.command("revoke")
@click.argument("key")
def revoke_cmd(key):
    """Revoke KEY (a kid, a keystore or trust-list name, or a PEM file) for good."""
    lib = signing_lib()
    store = lib.Keystore()
    try:
        kid, name = store.resolve_kid(key)
        tl = store.trust_list()
        tl.revoke(kid, name)
        tl.save()
    except lib.KeystoreError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"revoked kid {kid.hex()} in {store.trust_path} (re-provision devices to apply)")


__all__ = ["keys", "load_private_key", "get_passphrase", "signing_lib"]
