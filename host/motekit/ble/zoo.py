"""BlueZoo (a BlueZ D-Bus mock) as the test rig's bluetoothd, with two fixes to bluezoo 1.0.2.

Run as ``python -m motekit.ble.zoo --adapter ADDR [--adapter ADDR ...]`` with DBUS_SYSTEM_BUS_ADDRESS
pointing at a private bus (see :mod:`motekit.ble.rig`). Prints ``ready`` on stdout once ``org.bluez``
is on the bus with its adapters.

Fixes (stock 1.0.2):

1. a disconnect leaves the per-connection GATT objects (``dev_X/serviceNNNN/charNNNN``) exported and
   subscribed, so the next connect fails with EEXIST and every notification is confirmed twice: a
   disconnect now unsubscribes and removes them;
2. a disconnect from the peripheral side (``Device1.Disconnect`` on the peripheral adapter's device)
   never reaches the central's device object: both ends now go ``Connected = False``;
3. ``ManufacturerData`` is declared ``a{sv}`` on Device1 and LEAdvertisement1 (BlueZ: ``a{qv}``, keyed
   by company id), so any advertisement with manufacturer data kills the scan: declared ``a{qv}`` here.

And one rig choice: only hci0 has the ``central`` role (the boards' adapters are ``peripheral``), so
bleak's default adapter is the host's one, as on a gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def _counterpart(dev):
    """The device object on the other adapter that represents this device's own adapter."""
    other = dev.peer_adapter
    if dev.adapter is None or other is None:
        return None
    path = f"{other.get_object_path()}/dev_{dev.adapter.address.replace(':', '_')}"
    return other.devices.get(path)


async def _drop_links(dev):
    mock = dev.peer_adapter.mock
    for path, link in list(dev.services.items()):
        sub = getattr(link, "client_props_changed_subscription", None)
        if sub is not None:
            sub.unsubscribe()
        f = getattr(link, "f_read", None)
        if f is not None:
            try:
                asyncio.get_running_loop().remove_reader(f)
            except Exception:
                pass
            f.close()
            link.f_read = None
        try:
            mock.remove_object(link)
        except KeyError:
            pass
    dev.services.clear()


def patch():
    from bluezoo import device as devmod

    async def disconnect(self, uuid=None):
        self.connecting_task.cancel()
        devmod.logger.info(f"Disconnecting {self}")
        for d in (self, _counterpart(self)):
            if d is None:
                continue
            if d.services:
                await _drop_links(d)
            if d.services_resolved:
                await d.ServicesResolved.set_async(False)
            if d.connected:
                await d.Connected.set_async(False)

    devmod.Device.disconnect = disconnect

    from bluezoo.adapter import Adapter
    roles = Adapter.__dict__["Roles"]
    orig = roles.property_getter
    roles.property_getter = lambda self: orig(self) if self.id == 0 else ["peripheral"]

    from bluezoo.interfaces.Device import DeviceInterface
    from bluezoo.interfaces.LEAdvertisement import LEAdvertisementInterface
    for cls in (devmod.Device, DeviceInterface, LEAdvertisementInterface):
        for k in ("ManufacturerData",):
            prop = cls.__dict__.get(k)
            if prop is not None:
                prop.property_signature = "a{qv}"


async def _main(adapters, scan_interval):
    from bluezoo import bluezoo
    await bluezoo.startup(bus="system", adapters=adapters, auto_enable=True, scan_interval=scan_interval)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", "-a", action="append", required=True)
    p.add_argument("--scan-interval", type=float, default=0.25)
    p.add_argument("-v", "--verbose", action="count", default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * a.verbose, stream=sys.stderr)
    patch()
    try:
        asyncio.run(_main(a.adapter, a.scan_interval))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
