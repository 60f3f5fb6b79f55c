"""`mote model sign` / `mote model verify`: click commands, attached to the `model` group by its owner.

    mote model sign MODEL.mtm --key K [-o MODEL.signed] [--name N --version V --seq S
                    --board B ... --runtime R --label L ... --canary-input F --canary-output F]
    mote model verify MODEL.signed [--trust trust.json | --key K ...]
"""

from __future__ import annotations

import time
from pathlib import Path

import cbor2
import click

from .. import __version__, seqs
from .keys import load_private_key, signing_lib


def _manifest_lib():
    signing_lib()  # the one-line error if cryptography is missing
    from .. import manifest
    return manifest


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise click.ClickException(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise click.ClickException(f"{what} {path} is a directory, not a file") from None
    except OSError as e:
        raise click.ClickException(f"cannot read {what} {path}: {e.strerror}") from None


@click.command("sign")
@click.argument("model", metavar="MODEL.mtm")
@click.option("--key", "-k", "key_ref", required=True, help="signing key: keystore name or PEM file")
@click.option("-o", "--output", help="signed model to write (default: MODEL.signed beside the input)")
@click.option("--name", help="model name (default: the file name)")
@click.option("--version", "model_version", default="0", show_default=True, help="model version")
@click.option("--seq", type=click.IntRange(min=0),
              help="anti-rollback sequence number, must grow with every release (default: the next after the "
                   "highest this key signed for this model name, 1 for the first; kept in the keystore)")
@click.option("--board", "boards", multiple=True, help="compatible board (repeatable; none = any board)")
@click.option("--runtime", default=__version__, show_default=True, help="device runtime version")
@click.option("--label", "labels", multiple=True, help="class label, in output order (repeatable)")
@click.option("--canary-input", type=click.Path(dir_okay=False), help="canary input (raw bytes)")
@click.option("--canary-output", type=click.Path(dir_okay=False), help="its expected output (raw bytes)")
@click.option("--no-window", is_flag=True,
              help="not a window classifier: the board loads and trials it but does not feed it its sample window")
def sign(model, key_ref, output, name, model_version, seq, boards, runtime, labels, canary_input,
         canary_output, no_window):
    """Sign MODEL.mtm: write one file, a COSE_Sign1 manifest followed by the model.

    The model must pass the device's own structural checks (firmware/mote/mtm_check.py) and every --board
    must be a known board (boards/NAME.json, or * for any)."""
    blob = _read(model, "model")
    from ..model.validate import mtm_check, validate_mtm
    try:
        validate_mtm(blob)
    except mtm_check().ModelError as e:
        raise click.ClickException(f"{model} is not a valid model: {e}") from None
    from ..paths import boards_dir
    known = sorted(p.stem for p in boards_dir().glob("*.json") if p.stem != "schema")
    for b in boards:
        if b != "*" and b not in known:
            raise click.ClickException(f"unknown board {b!r} (known: {', '.join(known)}, or * for any)")
    if (canary_input is None) != (canary_output is None):
        raise click.ClickException("give both --canary-input and --canary-output, or neither")
    cin = _read(canary_input, "canary input") if canary_input else None
    cout = _read(canary_output, "canary output") if canary_output else None
    lib = signing_lib()
    mf = _manifest_lib()
    store = lib.Keystore()
    key = load_private_key(store, key_ref)
    now = int(time.time())
    name = name or Path(model).stem
    kid = lib.kid_of(key)
    explicit = seq is not None
    try:
        if seq is None:
            seq = seqs.next_seq(store.path, kid, name)
        data = mf.sign_model(blob, key, name=name, version=model_version,
                          seq=seq, boards=boards, runtime=runtime,
                          labels=labels, canary_input=cin, canary_output=cout, created=now,
                          window=False if no_window else None)
    except (mf.ManifestError, seqs.SeqError) as e:
        raise click.ClickException(str(e)) from None
    out = Path(output) if output else Path(model).with_suffix(".signed")
    try:
        out.write_bytes(data)
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e.strerror}") from None
    try:
        seqs.record(store.path, kid, name, seq)
    except seqs.SeqError as e:
        if not explicit:
            raise click.ClickException(str(e)) from None
        click.echo(f"warning: seq {seq} not recorded: {e}", err=True)
    click.echo(f"signed {out}: {len(blob)} B model + {len(data) - len(blob)} B manifest, "
               f"kid {kid.hex()}, seq {seq}")


@click.command("verify")
@click.argument("signed", metavar="MODEL.signed")
@click.option("--trust", "trust_file", type=click.Path(dir_okay=False),
              help="trust list JSON (default: the keystore's trust.json)")
@click.option("--key", "-k", "key_refs", multiple=True,
              help="trust only this public key (keystore name or PEM file; repeatable)")
def verify(signed, trust_file, key_refs):
    """Check a signed model: signature, trusted and unrevoked kid, size and SHA-256 of the model."""
    data = _read(signed, "signed model")
    lib = signing_lib()
    mf = _manifest_lib()
    store = lib.Keystore()
    try:
        if trust_file:
            tl = lib.TrustList.load(trust_file)
        else:
            tl = store.trust_list()  # its revocations apply even with --key
        if key_refs:
            trusted = {}
            for ref in key_refs:
                pub = store.public_key(ref)
                trusted[lib.kid_of(pub)] = pub
        else:
            if not tl.trusted and not trust_file and not store.trust_path.exists():
                raise click.ClickException("no trust list: trust a key with `mote keys trust NAME`, "
                                           "or pass --trust FILE or --key KEY")
            trusted = tl.public_keys()
        manifest, blob = mf.verify_signed(data, trusted, tl.revoked_kids())
    except (lib.KeystoreError, mf.ManifestError) as e:
        raise click.ClickException(str(e)) from None
    kid = cbor2.loads(mf.split_signed(data)[0].value[0])[4].hex()
    canary = " canary" if "canary" in manifest else ""
    boards = ",".join(manifest["boards"]) or "any board"
    click.echo(f"OK {signed}: {manifest['name']} {manifest['version']} seq {manifest['seq']}, "
               f"{manifest['size']} B sha256 {manifest['sha256'].hex()[:16]}..., {boards}, "
               f"runtime {manifest['runtime']}, {len(manifest['labels'])} labels{canary}, kid {kid}")


__all__ = ["sign", "verify"]
