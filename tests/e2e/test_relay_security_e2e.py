"""The relay's downlink against a real Mosquitto with docs/relay.md's example ACL, and a virtual board.

`mote relay --allow-cmd config.set` logs in as the gateway user: an anonymous client and a read-only dashboard
cannot command the board (the broker drops their publishes); the operator's `config.set` works; `repl`, a
request not allowed, bad params and a bad timeout are refused in one line; the board keeps running."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from motekit.relay.testing import Broker, free_port
from motekit.sim import VirtualBoard

MOTE = str(Path(sys.executable).with_name("mote"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "relay.md"
pytestmark = pytest.mark.timeout(120)
USERS = {"gw1": "gw-secret", "ops": "ops-secret", "dash": "dash-secret"}


def acl_from_docs() -> str:
    text = DOCS.read_text()
    m = re.search(r"```\n(# /etc/mosquitto/motekit\.acl.*?)```", text, re.S)
    assert m, "docs/relay.md lost its example ACL"
    return m.group(1)


class Client:
    def __init__(self, port, user=None, name="c"):
        self.got = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sec-{name}")
        if user:
            self.c.username_pw_set(user, USERS[user])
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        deadline = time.monotonic() + 10
        while not self.c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)

    def sub(self, topic):
        self.c.subscribe(topic, qos=1)
        time.sleep(0.3)

    def cmd(self, dev, rid, method, params=None, **extra):
        body = {"id": rid, "method": method, "params": params, **extra}
        self.c.publish(f"motekit/{dev}/cmd", json.dumps(body), qos=1).wait_for_publish(5)

    def responses(self):
        return {json.loads(p)["id"]: json.loads(p) for t, p in list(self.got) if t.endswith("/cmd/response")}

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_downlink_behind_the_documented_acl(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    for user, pw in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, pw], check=True, capture_output=True)
    acl = tmp_path / "motekit.acl"
    acl.write_text(acl_from_docs())
    broker = Broker(tmp_path / "broker", port=free_port(), extra=f"password_file {passwd}\nacl_file {acl}\n")
    board = VirtualBoard(seed=21, state_dir=tmp_path / "board", log=lambda m: None)
    relay = ops = anon = dash = None
    try:
        broker.start()
        port = board.start()
        from motekit.sim.supervisor import sim_uid
        dev = sim_uid(21)
        relay = subprocess.Popen([MOTE, "relay", "--from", f"serial:{port}", "--to",
                                  f"mqtt://gw1:{USERS['gw1']}@127.0.0.1:{broker.port}/motekit",
                                  "--spool", str(tmp_path / "r.db"), "--json-log", "--allow-cmd", "config.set"],
                                 stdout=subprocess.DEVNULL, stderr=open(tmp_path / "relay.log", "w"),
                                 start_new_session=True)
        ops = Client(broker.port, "ops", "ops")
        ops.sub("motekit/#")
        wait(lambda: any(t.endswith("/telemetry") for t, _ in list(ops.got)), 30, "telemetry through the relay")
        anon = Client(broker.port, None, "anon")
        dash = Client(broker.port, "dash", "dash")
        ops.cmd(dev, 3, "config.set", {"hop": 20})
        wait(lambda: 3 in ops.responses(), 20, "the operator's config.set")
        anon.cmd(dev, 1, "config.set", {"hop": 9})          # the broker drops these: no write on +/cmd
        dash.cmd(dev, 2, "config.set", {"hop": 9})
        ops.cmd(dev, 4, "repl")
        ops.cmd(dev, 5, "policy.set", {"hb_s": 1})
        ops.cmd(dev, 6, "keys.set", {"keys": {}})
        ops.cmd(dev, 7, "info", timeout="soon")
        ops.cmd(dev, 8, "info", timeout=1e9)
        nested = {}
        for _ in range(20):
            nested = {"a": nested}
        ops.cmd(dev, 9, "config.set", nested)
        ops.cmd(dev, 10, "config.get")
        ops.cmd(dev, 11, "upload.begin", {"size": 10 ** 6, "sha256": "00" * 32, "manifest_len": 100})
        wait(lambda: set(range(3, 12)) <= set(ops.responses()), 20, "the operator's responses")
        time.sleep(1.0)
        r = ops.responses()
        assert 1 not in r and 2 not in r                    # never reached the relay
        assert r[3]["ok"] and r[3]["result"]["hop"] == 20
        assert r[10]["ok"] and r[10]["result"]["hop"] == 20 # not 9: the anonymous / read-only writes did nothing
        for rid, needle in ((4, "never forwarded"), (5, "--allow-cmd policy.set"), (6, "--allow-cmd keys.set"),
                            (7, "timeout must be"), (8, "timeout must be"), (9, "nest deeper"),
                            (11, "--allow-cmd upload.begin")):
            assert not r[rid]["ok"] and needle in r[rid]["error"] and "\n" not in r[rid]["error"], r[rid]
        n = sum(1 for t, _ in list(ops.got) if t.endswith("/telemetry"))
        wait(lambda: sum(1 for t, _ in list(ops.got) if t.endswith("/telemetry")) > n, 10, "more telemetry")
        assert relay.poll() is None                         # the relay and the board keep running
    finally:
        for c in (ops, anon, dash):
            if c is not None:
                c.close()
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(10)
            except subprocess.TimeoutExpired:
                relay.kill()
        board.stop()
        broker.stop()
