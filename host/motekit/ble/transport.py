"""BLE transport on bleak: the same read/write/close/name as SerialTransport, so `Link` works unchanged.

bleak is asyncio; `Link` is synchronous. Each transport runs its own event loop in a thread: notifications
land in a byte buffer that `read()` drains, `write()` splits frames into ATT writes of MTU - 3 bytes.
A lost connection makes `read()`/`write()` raise TransportError (as an unplugged serial port does), so
the callers' reconnect logic is the same for both links; `connect_backoff` retries with exponential
backoff (what bleak-retry-connector does for Home Assistant).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from dataclasses import dataclass

from ..transport import TransportError
from . import adv as advmod

ADDR_RE = re.compile(r"^([0-9A-Fa-f]{2}[:_-]){5}[0-9A-Fa-f]{2}$")


def default_adapter() -> str | None:
    return os.environ.get("MOTE_BLE_ADAPTER") or None


def _bluez(adapter):
    return {"adapter": adapter} if adapter else {}


def is_address(s: str) -> bool:
    return bool(ADDR_RE.match(s))


@dataclass
class Found:
    name: str | None
    address: str
    rssi: int | None
    mote: advmod.MoteAdv | None
    device: object = None

    def to_json(self) -> dict:
        m = self.mote
        return {"name": self.name, "address": self.address, "rssi": self.rssi,
                "device": m.device if m else None, "battery": m.soc if m else None,
                "status": m.status if m else None, "flags": m.flags if m else []}


def matches(f: Found, target: str) -> bool:
    t = target.lower()
    if is_address(target):
        return f.address.lower().replace("_", ":").replace("-", ":") == t.replace("_", ":").replace("-", ":")
    return (f.name or "").lower() == t or bool(f.mote and f.mote.device.startswith(t))


async def scan_async(timeout: float = 5.0, adapter: str | None = None, target: str | None = None,
                     all_devices: bool = False) -> list[Found]:
    """Boards advertising the NUS (or motekit's manufacturer data); stops early when `target` is seen."""
    from bleak import BleakScanner
    found: dict[str, Found] = {}
    done = asyncio.Event()

    def seen(d, ad):
        m = advmod.decode_mote(ad.manufacturer_data)
        if not all_devices and m is None and advmod.NUS not in [u.lower() for u in ad.service_uuids]:
            return
        f = Found(ad.local_name or d.name, d.address, ad.rssi, m, d)
        prev = found.get(d.address)
        if prev and f.mote is None:
            f.mote = prev.mote
        found[d.address] = f
        if target and matches(f, target):
            done.set()

    try:
        async with BleakScanner(seen, bluez=_bluez(adapter or default_adapter())):
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except asyncio.TimeoutError:
                pass
    except Exception as e:
        raise TransportError(f"cannot scan for BLE boards: {_why(e)}") from None
    return sorted(found.values(), key=lambda f: (f.name or "", f.address))


def scan(timeout: float = 5.0, adapter: str | None = None, all_devices: bool = False) -> list[Found]:
    return asyncio.run(scan_async(timeout, adapter, all_devices=all_devices))


def _why(e: BaseException) -> str:
    s = str(e) or e.__class__.__name__
    if "org.freedesktop.DBus.Error.ServiceUnknown" in s or "org.bluez" in s and "not" in s.lower():
        return "BlueZ is not running (start bluetoothd, or `mote sim --ble --virtual-radio` prints a test bus)"
    if isinstance(e, FileNotFoundError) or "No such file" in s:
        return "no D-Bus system bus (is this Linux with BlueZ? set DBUS_SYSTEM_BUS_ADDRESS for a test rig)"
    return s


class BleTransport:
    """One connection to a board's Nordic UART Service."""

    def __init__(self, target: str, adapter: str | None = None, timeout: float = 10.0, pair: bool = False):
        self.target = target
        self.adapter = adapter or default_adapter()
        self.name = f"ble:{target}"
        self.mtu = 23
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._lost: str | None = None
        self._closed = False
        self.client = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mote-ble", daemon=True)
        self._thread.start()
        try:
            self._run(self._connect(timeout, pair), timeout + 5)
        except BaseException:
            self.close()
            raise

    def _run(self, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise TransportError(f"{self.name}: timed out") from None

    async def _connect(self, timeout, pair):
        from bleak import BleakClient
        from bleak.exc import BleakError
        found = await scan_async(timeout, self.adapter, target=self.target)
        dev = next((f for f in found if matches(f, self.target)), None)
        if dev is None:
            raise TransportError(f"no BLE board {self.target!r} found within {timeout:g} s "
                                 f"(`mote scan` lists boards in range)")
        self.address = dev.address
        self.name = f"ble:{dev.name or dev.address}"
        try:
            self.client = BleakClient(dev.device, disconnected_callback=self._on_disconnect,
                                      bluez=_bluez(self.adapter), pair=pair, timeout=timeout)
            await self.client.connect()
        except (BleakError, asyncio.TimeoutError, OSError) as e:
            raise TransportError(f"cannot connect to {self.name}: {_why(e)}") from None
        try:
            await self.client._backend._acquire_mtu()     # BlueZ: learn the ATT MTU (AcquireWrite)
            self.mtu = self.client.mtu_size
        except Exception:
            self.mtu = 23
        try:
            await self.client.start_notify(advmod.NUS_TX, self._on_notify)
        except (BleakError, Exception) as e:
            raise TransportError(f"{self.name} has no motekit UART service: {_why(e)}") from None

    def _on_notify(self, _char, data: bytearray):
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    def _on_disconnect(self, _client):
        with self._cond:
            if not self._closed:
                self._lost = "disconnected"
            self._cond.notify_all()

    # -- transport API ---------------------------------------------------------------------------
    def read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._buf:
                if self._lost:
                    raise TransportError(f"lost the board on {self.name} ({self._lost})")
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._cond.wait(left)
            data = bytes(self._buf)
            self._buf.clear()
            return data

    def write(self, data: bytes) -> None:
        if self._lost or self.client is None:
            raise TransportError(f"lost the board on {self.name} while writing ({self._lost or 'closed'})")
        try:
            self._run(self._write(bytes(data)), 30)
        except TransportError:
            raise
        except Exception as e:
            raise TransportError(f"lost the board on {self.name} while writing ({_why(e)})") from None

    async def _write(self, data: bytes):
        step = max(20, self.mtu - 3)
        for i in range(0, len(data), step):
            await self.client.write_gatt_char(advmod.NUS_RX, data[i:i + step], response=False)

    def drop(self):
        """Fault injection for tests: disconnect as if the radio link broke."""
        if self.client is not None:
            self._run(self.client.disconnect(), 10)

    def close(self) -> None:
        self._closed = True
        if self.client is not None and self.loop.is_running():
            try:
                self._run(self.client.disconnect(), 10)
            except Exception:
                pass
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


def connect_backoff(target: str, adapter: str | None = None, attempts: int = 6, first: float = 0.25,
                    factor: float = 2.0, cap: float = 4.0, timeout: float = 10.0, sleep=time.sleep,
                    make=BleTransport) -> BleTransport:
    """Connect, retrying with exponential backoff (first, first*factor, ... capped) on TransportError."""
    delay = first
    for attempt in range(1, attempts + 1):
        try:
            return make(target, adapter=adapter, timeout=timeout)
        except TransportError:
            if attempt == attempts:
                raise
            sleep(delay)
            delay = min(cap, delay * factor)
    raise AssertionError("unreachable")


def open_link(target: str, adapter: str | None = None, hello_timeout: float = 5.0, timeout: float = 10.0,
              attempts: int = 1):
    """A motekit Link over BLE, hello done: ``Link.open("ble:" + target)``."""
    from ..link import Link
    return Link.open(f"ble:{target}", hello_timeout=hello_timeout, attempts=attempts, timeout=timeout, adapter=adapter)
