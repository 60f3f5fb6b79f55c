"""`mote relay`: a gateway from motekit boards (serial now, BLE later) to MQTT with store-and-forward.

Pieces: `sources` (one reconnecting link per board), `spool` (SQLite store-and-forward and dedup),
`mqtt` (QoS 1 publisher, status, downlink), `metrics` (Prometheus SLIs), `consumer` (the documented
subscriber-side dedup), `core` (wires them), `cli` (the command). docs/relay.md explains the guarantees.
"""
