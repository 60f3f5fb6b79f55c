"""Subscriber side: the deduplication every motekit consumer applies (docs/relay.md, "guarantees").

The relay delivers each record to the broker *at least once* (QoS 1 plus a resend from the spool after a
relay crash or a lost PUBACK). Every payload carries (device, boot, seq); `Dedup` passes each record once
and in order per device stream, dropping anything at or below the stream's highest seq already seen:

    dedup = Dedup()
    def on_message(client, userdata, msg):
        rec = decode(msg.payload)
        if dedup.accept(rec):
            handle(rec)

Keep `Dedup.state()` with your own results (same transaction) and pass it back to `Dedup(state)` after a
restart to stay exactly-once across consumer restarts too. Subscribe with QoS 1 and a persistent session
(clean_session=False, fixed client id) so the broker queues records while the consumer is away.
"""

from __future__ import annotations

import json

import cbor2


def decode(payload: bytes) -> dict:
    """A telemetry payload (JSON by default, CBOR with ?format=cbor) -> dict."""
    if payload[:1] in (b"{", b" "):
        return json.loads(payload)
    return cbor2.loads(payload)


class Dedup:
    def __init__(self, state: dict | None = None):
        self.hi: dict[tuple[str, int], int] = {}
        self.duplicates = 0
        self.gaps = 0
        if state:
            for k, v in state.items():
                dev, _, boot = k.rpartition("/")
                self.hi[(dev, int(boot))] = v

    def accept(self, rec: dict) -> bool:
        """True the first time a (device, boot, seq) is seen; False for a duplicate (counted)."""
        key = (rec["device"], rec["boot"])
        seq = rec["seq"]
        hi = self.hi.get(key)
        if hi is not None and seq <= hi:
            self.duplicates += 1
            return False
        if hi is not None and seq > hi + 1:
            self.gaps += seq - hi - 1
        self.hi[key] = seq
        return True

    def state(self) -> dict:
        return {f"{d}/{b}": s for (d, b), s in self.hi.items()}
