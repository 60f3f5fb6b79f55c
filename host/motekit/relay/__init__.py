"""`mote relay`: a gateway from motekit boards (serial and BLE) to MQTT brokers or files, with store-and-forward.

Pieces: `sources` (one reconnecting link per board), `spool` (SQLite store-and-forward and dedup),
`sinks` (the upstream interface, chosen by URL scheme), `mqtt` (the mqtt:// sink: QoS 1 publisher, status,
downlink), `filesink` (file://: JSON lines), `metrics` (Prometheus SLIs), `consumer` (the documented
subscriber-side dedup), `core` (wires them), `cli` (the command). docs/relay.md explains the guarantees.
"""
