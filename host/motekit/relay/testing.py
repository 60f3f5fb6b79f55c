"""Helpers for tests and tools/bench_relay.py: a throwaway Mosquitto broker and a recording subscriber."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from .. import procs
from .consumer import decode

INSTALL_HINT = "mosquitto is not installed: apt-get update && apt-get install -y mosquitto"


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not exe:
        raise RuntimeError(INSTALL_HINT)
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Mosquitto on 127.0.0.1:PORT with persistence in `workdir`; stop()/start() keep the port and the data."""

    def __init__(self, workdir: Path, port: int | None = None, tls: tuple | None = None, extra: str = ""):
        """tls=(certfile, keyfile, password_file): a second listener (`tls_port`) with TLS and passwords only;
        the plain one stays anonymous for the test's own subscriber. extra: more mosquitto.conf lines (e.g.
        password_file / acl_file)."""
        self.exe = mosquitto_exe()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port = free_port() if tls else None
        self.conf = self.dir / "mosquitto.conf"
        secure = ""
        if tls:
            cert, key, passwd = tls
            secure = (f"listener {self.tls_port} 127.0.0.1\n"
                      f"certfile {cert}\nkeyfile {key}\npassword_file {passwd}\nallow_anonymous false\n")
        self.conf.write_text(
            ("per_listener_settings true\n" if tls else "") +
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n" + secure + extra +
            # started as root, mosquitto would switch to user "mosquitto" and fail to write its files here
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            # a subscriber away or slow must not lose QoS 1 messages: no queue limits
            "max_queued_messages 0\n"
            "max_inflight_messages 1000\n"
            f"log_dest file {self.dir}/mosquitto.log\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0):
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode(errors='replace')[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM: mosquitto saves its persistence file (queued QoS 1 messages, retained) before exiting."""
        procs.stop(self.proc, sig)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class Recorder:
    """Subscribes with QoS 1 and a persistent session; keeps every message (duplicates included)."""

    def __init__(self, port: int, topic: str = "motekit/+/telemetry", client_id: str = "motekit-test-sub"):
        self.msgs: list[tuple[float, dict]] = []
        self.other: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.topic = topic
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=False)
        self.c.reconnect_delay_set(0.1, 1.0)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic, 1), ("motekit/+/status", 1),
                                                                 ("motekit/+/cmd/response", 1)])
        self.c.on_message = self._on_message
        self.c.connect_async("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        now = time.time()
        if msg.topic.endswith("/telemetry"):
            rec = decode(msg.payload)
            with self.lock:
                self.msgs.append((now, rec))
        else:
            with self.lock:
                self.other.append((msg.topic, msg.payload, msg.retain))

    def wait_connected(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.c.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("subscriber could not connect")
            time.sleep(0.05)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
