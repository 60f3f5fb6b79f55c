"""BLE: the board's Nordic UART Service link (bleak), its advertising data, and the BlueZoo test rig.

- ``motekit.ble.transport``: ``BleTransport`` (a ``motekit.transport.Transport``: ``open("ble:NAME")``),
  ``scan``, ``connect_backoff``;
- ``motekit.ble.adv``: AD structures and motekit's advertised health (device id, battery, status);
- ``motekit.ble.pairing``: ``mote pair`` (LE Secure Connections bonding through BlueZ);
- ``motekit.ble.rig`` / ``motekit.ble.zoo``: private dbus-daemon + patched BlueZoo, no radio.

Needs the ``ble`` extra (bleak, dbus-fast; bluezoo for the rig).
"""
