"""motekit host toolkit: talk to motes over serial/BLE, build and sign models, relay telemetry."""

__version__ = "0.1.0"
