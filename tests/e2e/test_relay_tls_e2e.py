"""`mote relay --to mqtts://USER:PASS@…?ca=…`: TLS and a password against a real Mosquitto listener that takes
nothing else (its certificate from a CA made here with `cryptography`). Wrong password, wrong CA: the relay
says so in its log, delivers nothing, and keeps the records in its spool."""

import datetime
import ipaddress
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from motekit import procs
from motekit.relay.testing import Broker, Recorder

MOTE = str(Path(sys.executable).with_name("mote"))


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(tmp: Path, tag: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(f"motekit test CA {tag}")).issuer_name(_name(f"motekit test CA {tag}"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp / f"ca-{tag}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def make_server_cert(tmp: Path, ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                                        serialization.NoEncryption()))
    return tmp / "server.pem", tmp / "server.key"


def spooled(db: Path) -> int:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return c.execute("SELECT count(*) FROM spool").fetchone()[0]
    finally:
        c.close()


def relay(tmp: Path, link: Path, url: str, tag: str):
    log = tmp / f"relay-{tag}.log"
    p = subprocess.Popen([MOTE, "relay", f"--from=serial:{link}", "--to", url, "--spool", str(tmp / f"{tag}.db"),
                          "--json-log"], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    return p, log


def events(log: Path):
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for_broker_state(log: Path, state: str, timeout: float = 30.0):
    """Wait until the relay has logged this broker state (it first has to start and meet the board)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("event") == "broker" and e.get("state") == state for e in events(log)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no broker state {state!r} in {timeout:g} s: " + log.read_text()[-2000:])


def test_relay_over_tls_with_a_password_and_refusals(tmp_path):
    ca_key, ca_cert, ca = make_ca(tmp_path, "good")
    _, _, other_ca = make_ca(tmp_path, "other")
    cert, key = make_server_cert(tmp_path, ca_key, ca_cert)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "gw1", "s3cret"], check=True, capture_output=True)
    broker = Broker(tmp_path / "broker", tls=(cert, key, passwd))
    board = sub = None
    procs_ = []
    try:
        broker.start()
        sub = Recorder(broker.port, client_id="motekit-tls-sub")
        sub.wait_connected()
        link = tmp_path / "ttyMOTE"
        board = subprocess.Popen([MOTE, "sim", "--seed", "21", "--state", str(tmp_path / "board"), "--link", str(link)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert board.stdout.readline().strip() == str(link)
        base = f"127.0.0.1:{broker.tls_port}/motekit"
        # wrong password, then a CA that did not sign the broker's certificate: nothing delivered
        bad_pw, bad_pw_log = relay(tmp_path, link, f"mqtts://gw1:nope@{base}?ca={ca}", "badpw")
        procs_.append(bad_pw)
        wait_for_broker_state(bad_pw_log, "refused")
        time.sleep(1)               # a retry or two: still refused, never connected
        procs.stop(bad_pw, timeout=15)
        bad_ca, bad_ca_log = relay(tmp_path, link, f"mqtts://gw1:s3cret@{base}?ca={other_ca}", "badca")
        procs_.append(bad_ca)
        wait_for_broker_state(bad_ca_log, "unreachable")
        time.sleep(2)               # retries: said only once
        procs.stop(bad_ca, timeout=15)
        with sub.lock:
            assert sub.msgs == []
        seen = [e for e in events(bad_pw_log) if e.get("event") == "broker"]
        assert {e.get("state") for e in seen} <= {"refused", "disconnected"}, seen    # never "connected"
        refused = [e for e in seen if e.get("state") == "refused"]
        assert refused and ("not authorized" in refused[0]["reason"].lower()
                            or "password" in refused[0]["reason"].lower()), refused
        seen = [e for e in events(bad_ca_log) if e.get("event") == "broker"]
        assert [e["state"] for e in seen] == ["unreachable"], seen    # the TLS handshake fails: said once
        assert "certificate did not verify" in seen[0]["reason"] and "?ca=" in seen[0]["reason"]
        assert spooled(tmp_path / "badpw.db") > 0 and spooled(tmp_path / "badca.db") > 0   # kept, not lost
        # the right password and CA: records flow over TLS
        good, good_log = relay(tmp_path, link, f"mqtts://gw1:s3cret@{base}?ca={ca}", "good")
        procs_.append(good)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sub.lock:
                if len(sub.msgs) >= 5:
                    break
            time.sleep(0.2)
        with sub.lock:
            recs = [r for _, r in sub.msgs]
        assert len(recs) >= 5, good_log.read_text()[-2000:]
        assert {e.get("state") for e in events(good_log) if e.get("event") == "broker"} >= {"connected"}
    finally:
        for p in procs_:
            procs.stop(p, timeout=15)
        if board is not None:
            procs.stop(board)
        if sub is not None:
            sub.close()
        broker.stop()
