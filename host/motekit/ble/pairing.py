"""`mote pair ADDR`: bond with a board (LE Secure Connections, Just Works) through BlueZ, then trust it.

The steps are kept apart from bleak (``PairOps``) so the decisions are unit-tested without a radio; the
BlueZoo rig cannot pair (it has no security manager), which ``pair`` reports as such.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class PairResult:
    ok: bool
    already: bool
    message: str


class PairOps:
    """What pairing needs from the stack (bleak + BlueZ D-Bus below; fakes in tests)."""

    async def connect(self) -> None: ...
    async def is_paired(self) -> bool: ...
    async def pair(self) -> None: ...
    async def is_bonded(self) -> bool: ...
    async def trust(self) -> None: ...
    async def disconnect(self) -> None: ...


async def run_pair(ops: PairOps, name: str) -> PairResult:
    await ops.connect()
    try:
        if await ops.is_paired():
            await ops.trust()
            return PairResult(True, True, f"{name} is already paired; marked trusted")
        try:
            await ops.pair()
        except Exception as e:
            text = str(e)
            if "AuthenticationFailed" in text or "AuthenticationRejected" in text:
                return PairResult(False, False, f"{name} refused pairing: is it in pairing mode?")
            if "AlreadyExists" in text:
                await ops.trust()
                return PairResult(True, True, f"{name} is already paired; marked trusted")
            return PairResult(False, False, f"pairing with {name} failed: {text}")
        if not await ops.is_paired():
            return PairResult(False, False,
                              f"{name} did not pair: this Bluetooth stack completed no pairing "
                              f"(the BlueZoo test rig has no security manager; use a real adapter)")
        bonded = await ops.is_bonded()
        await ops.trust()
        return PairResult(True, False, f"paired with {name}" + (" and bonded" if bonded else
                                                                 " (not bonded: keys will not be kept)"))
    finally:
        await ops.disconnect()


class BleakPairOps(PairOps):
    def __init__(self, device, adapter=None, timeout=15.0):
        from bleak import BleakClient
        self.client = BleakClient(device, bluez={"adapter": adapter} if adapter else {}, timeout=timeout)
        self.path = None

    async def _prop(self, name):
        from bleak.backends.bluezdbus.manager import get_global_bluez_manager
        m = await get_global_bluez_manager()
        return bool(m._properties.get(self.client._backend._device_path, {})
                    .get("org.bluez.Device1", {}).get(name, False))

    async def connect(self):
        await self.client.connect()

    async def is_paired(self):
        return await self._prop("Paired")

    async def is_bonded(self):
        return await self._prop("Bonded")

    async def pair(self):
        await self.client.pair()

    async def trust(self):
        from dbus_fast import Message, Variant
        bus = self.client._backend._bus
        await bus.call(Message(destination="org.bluez", path=self.client._backend._device_path,
                               interface="org.freedesktop.DBus.Properties", member="Set", signature="ssv",
                               body=["org.bluez.Device1", "Trusted", Variant("b", True)]))

    async def disconnect(self):
        try:
            await self.client.disconnect()
        except Exception:
            pass


def pair(target: str, adapter: str | None = None, timeout: float = 15.0) -> PairResult:
    from ..transport import TransportError
    from .transport import matches, scan_async

    async def go():
        found = await scan_async(timeout, adapter, target=target)
        dev = next((f for f in found if matches(f, target)), None)
        if dev is None:
            raise TransportError(f"no BLE board {target!r} found within {timeout:g} s (`mote scan`)")
        return await run_pair(BleakPairOps(dev.device, adapter, timeout), dev.name or dev.address)

    return asyncio.run(go())
