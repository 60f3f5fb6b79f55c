"""The virtual board's radio: bridges the sim's `bluetooth` module to BlueZ over D-Bus.

The firmware's own BLE code runs in the interpreter against ``host/motekit/sim/mpy/bluetooth.py`` (the
subset of MicroPython's ``bluetooth.BLE`` the firmware uses). That module talks to this bridge over a
loopback TCP socket; the bridge is a BlueZ *peripheral application* on one adapter: it exports the
firmware's GATT services and its advertisement (decoded from the firmware's raw advertising payload)
with dbus-fast, registers them with ``GattManager1`` / ``LEAdvertisingManager1``, and turns BlueZ's
calls back into the events the firmware's irq handler sees.

On the rig (BlueZoo) ``rig=True``: notifications are credited back when BlueZoo calls ``Confirm()`` (it
does, once per notification), and the advertisement's service data carries a changing heartbeat so
BlueZoo's scans keep reporting the board. On a real BlueZ a notification is credited once it is on the
bus.

Socket messages: ``u16le length | u8 op | payload``.

====  =================  ===============================================================
op    direction          payload
====  =================  ===============================================================
0x01  device -> bridge   HELLO json {"name", "mtu"}: GAP name, preferred ATT MTU
0x02  device -> bridge   SERVICES json [[svc_uuid, [[char_uuid, flags, value_handle]...]]...]
0x03  device -> bridge   ADV json {"interval_us", "connectable", "adv": hex, "resp": hex}
0x04  device -> bridge   ADV_STOP
0x05  device -> bridge   NOTIFY u16 conn, u16 handle, data
0x06  device -> bridge   DISCONNECT u16 conn
0x81  bridge -> device   CONNECT u16 conn, u8 addr_type, addr[6]
0x82  bridge -> device   DISCONNECTED u16 conn, u8 addr_type, addr[6]
0x83  bridge -> device   WRITE u16 conn, u16 handle, data
0x84  bridge -> device   MTU u16 conn, u16 mtu
0x85  bridge -> device   CREDIT u16 n (notifications the stack has delivered)
0x86  bridge -> device   ENC u16 conn, encrypted, authenticated, bonded, key_size
====  =================  ===============================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import threading
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from ..ble import adv as advmod

log = logging.getLogger("motekit.sim.ble_bridge")

OP_HELLO, OP_SERVICES, OP_ADV, OP_ADV_STOP, OP_NOTIFY, OP_DISCONNECT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_CONNECT, OP_DISCONNECTED, OP_WRITE, OP_MTU, OP_CREDIT, OP_ENC = 0x81, 0x82, 0x83, 0x84, 0x85, 0x86

FLAGS = [(0x0001, "broadcast"), (0x0002, "read"), (0x0004, "write-without-response"), (0x0008, "write"),
         (0x0010, "notify"), (0x0020, "indicate"), (0x0040, "authenticated-signed-writes"),
         (0x0200, "encrypt-read"), (0x0400, "encrypt-authenticated-read"),
         (0x1000, "encrypt-write"), (0x2000, "encrypt-authenticated-write")]
HEARTBEAT_UUID = "0000fffe-0000-1000-8000-00805f9b34fb"   # rig only: changes so BlueZoo's scans report us
CENTRAL_MTU = 517


def flags_to_bluez(f: int) -> list[str]:
    return [name for bit, name in FLAGS if f & bit]


def _addr_bytes(addr: str) -> bytes:
    return bytes(int(x, 16) for x in reversed(addr.split(":")))


class Service(ServiceInterface):
    def __init__(self, uuid: str):
        super().__init__("org.bluez.GattService1")
        self.uuid = uuid

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True


class Characteristic(ServiceInterface):
    def __init__(self, bridge: "Bridge", service_path: str, uuid: str, flags: int, handle: int):
        super().__init__("org.bluez.GattCharacteristic1")
        self.bridge = bridge
        self.service_path = service_path
        self.uuid = uuid
        self.flags = flags_to_bluez(flags)
        self.handle = handle
        self.value = b""
        self.notifying = False
        self._fds: list[socket.socket] = []

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return self.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> "q":
        return self.bridge.mtu

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        return self.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}"):
        dev = options.get("device")
        self.bridge.on_write(dev.value if dev else None, self.handle, bytes(value))

    @method()
    def AcquireWrite(self, options: "a{sv}") -> "hq":
        # BlueZ hands the central a socket for write-without-response; bleak also uses it to learn the MTU
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self._fds.append(ours)
        dev = options.get("device")
        path = dev.value if dev else None
        loop = asyncio.get_running_loop()

        def readable():
            try:
                data = ours.recv(1024)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(ours)
                ours.close()
                return
            self.bridge.on_write(path, self.handle, data)

        loop.add_reader(ours, readable)
        fd = os.dup(theirs.fileno())
        theirs.close()
        self.bridge.later_close(fd)
        return [fd, self.bridge.mtu]

    @method()
    def StartNotify(self):
        if not self.notifying:
            self.notifying = True
            self.emit_properties_changed({"Notifying": True})

    @method()
    def StopNotify(self):
        if self.notifying:
            self.notifying = False
            self.emit_properties_changed({"Notifying": False})

    @method()
    def Confirm(self):
        self.bridge.on_confirm()

    def notify(self, data: bytes):
        self.value = data
        self.emit_properties_changed({"Value": data})


class Advertisement(ServiceInterface):
    def __init__(self, props: dict[str, Any]):
        super().__init__("org.bluez.LEAdvertisement1")
        self.props = props

    def update(self, **kw):
        self.props.update(kw)
        self.emit_properties_changed({k: v for k, v in kw.items()})

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":
        return self.props["Type"]

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> "s":
        return self.props.get("LocalName", "")

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> "as":
        return self.props.get("ServiceUUIDs", [])

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> "a{qv}":
        return self.props.get("ManufacturerData", {})

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> "a{sv}":
        return self.props.get("ServiceData", {})

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def MinInterval(self) -> "u":
        return self.props.get("MinInterval", 100)

    @dbus_property(access=PropertyAccess.READ)
    def MaxInterval(self) -> "u":
        return self.props.get("MaxInterval", 100)

    @method()
    def Release(self):
        pass


class Bridge:
    """One virtual board's radio on one BlueZ adapter. ``start()`` returns the TCP port for the sim."""

    def __init__(self, bus_address: str | None = None, adapter: str = "hci1", rig: bool = False,
                 heartbeat_s: float = 0.25, log_fn=None):
        self.bus_address = bus_address
        self.adapter = adapter
        self.adapter_path = f"/org/bluez/{adapter}"
        self.rig = rig
        self.heartbeat_s = heartbeat_s
        self.logf = log_fn or (lambda m: log.info(m))
        self.base = f"/motekit/{adapter}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.port: int | None = None
        self.bus: MessageBus | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.name = "mote"
        self.dev_mtu = 23
        self.mtu = 23
        self.chars: dict[int, Characteristic] = {}
        self.exported: list[str] = []
        self.app_registered = False
        self.adv: Advertisement | None = None
        self.adv_registered = False
        self.conns: dict[str, int] = {}      # device path -> conn handle
        self.next_conn = 64
        self.notified = 0
        self.confirmed = 0
        self._hb = 0
        self._hb_task: asyncio.Task | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._fds: list[int] = []
        self._adv_lock = asyncio.Lock()
        self.stats = {"notifications": 0, "writes": 0, "connects": 0, "disconnects": 0}

    # -- lifecycle (caller's thread) ------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> int:
        self.thread = threading.Thread(target=self._run, name=f"mote-ble-{self.adapter}", daemon=True)
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the BLE bridge did not start")
        if self._error:
            raise self._error
        return self.port

    def stop(self):
        if self.loop and self.loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                fut.result(5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(5)

    def disconnect_all(self):
        """Drop every central (fault injection: the radio link breaks)."""
        if self.loop:
            asyncio.run_coroutine_threadsafe(self._disconnect_all(), self.loop).result(5)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._setup())
        except BaseException as e:   # report to start()
            self._error = e if isinstance(e, Exception) else RuntimeError(str(e))
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _setup(self):
        kw = {"bus_address": self.bus_address} if self.bus_address else {"bus_type": BusType.SYSTEM}
        self.bus = await MessageBus(negotiate_unix_fd=True, **kw).connect()
        self.bus.add_message_handler(self._on_signal)
        for rule in (f"type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                     f"path_namespace='{self.adapter_path}'",):
            await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch",
                             "s", [rule])
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.server = server

    async def _shutdown(self):
        await self._device_gone()
        if self.bus:
            self.bus.disconnect()

    async def _call(self, dest, path, iface, member, sig="", body=None):
        reply = await self.bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                            signature=sig, body=body or []))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member} on {path}: {reply.error_name} {reply.body}")
        return reply

    def later_close(self, fd):
        # our end of an AcquireWrite fd is dup'd into the reply; close the dup after sending
        self.loop.call_later(1.0, lambda: _close(fd))

    # -- the sim side ---------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if self.writer is not None:      # a new interpreter (the board rebooted): drop the old one
            await self._device_gone()
        self.writer = writer
        self.logf("board radio attached")
        try:
            while True:
                hdr = await reader.readexactly(2)
                n = hdr[0] | hdr[1] << 8
                body = await reader.readexactly(n)
                try:
                    await self._device_msg(body[0], body[1:])
                except Exception as e:
                    self.logf(f"radio: {e}")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.writer is writer:
                self.logf("board radio detached")
                await self._device_gone()
                self.writer = None
            writer.close()

    def _send(self, op: int, payload: bytes = b""):
        w = self.writer
        if w is not None and not w.is_closing():
            w.write(struct.pack("<HB", len(payload) + 1, op) + payload)

    async def _device_msg(self, op: int, p: bytes):
        if op == OP_NOTIFY:
            conn, h = struct.unpack_from("<HH", p)
            ch = self.chars.get(h)
            if ch is None or conn not in self.conns.values() or not ch.notifying:
                # nobody to deliver to (no such central, or it has not subscribed yet): a controller
                # sends it into the void and frees the buffer, so no Confirm() will ever credit it
                self._send(OP_CREDIT, struct.pack("<H", 1))
                self.stats["unsubscribed"] = self.stats.get("unsubscribed", 0) + (ch is not None)
                return
            ch.notify(bytes(p[4:]))
            self.stats["notifications"] += 1
            self.notified += 1
            if not self.rig:
                self._send(OP_CREDIT, struct.pack("<H", 1))
        elif op == OP_HELLO:
            h = json.loads(p)
            self.name = h.get("name") or self.name
            self.dev_mtu = int(h.get("mtu", 23))
        elif op == OP_SERVICES:
            await self._register_app(json.loads(p))
        elif op == OP_ADV:
            a = json.loads(p)
            await self._advertise(a)
        elif op == OP_ADV_STOP:
            await self._unadvertise()
        elif op == OP_DISCONNECT:
            (conn,) = struct.unpack_from("<H", p)
            for path, c in list(self.conns.items()):
                if c == conn:
                    await self._disconnect_path(path)

    async def _device_gone(self):
        await self._disconnect_all()
        await self._unadvertise()
        await self._unregister_app()

    # -- GATT application -----------------------------------------------------------------------
    async def _register_app(self, services):
        await self._unregister_app()
        app = f"{self.base}/app"
        for i, (suuid, chars) in enumerate(services):
            spath = f"{app}/service{i}"
            self.bus.export(spath, Service(suuid))
            self.exported.append(spath)
            for j, (cuuid, flags, handle) in enumerate(chars):
                cpath = f"{spath}/char{j}"
                ch = Characteristic(self, spath, cuuid, flags, handle)
                self.bus.export(cpath, ch)
                self.exported.append(cpath)
                self.chars[handle] = ch
        await self._call("org.bluez", self.adapter_path, "org.bluez.GattManager1", "RegisterApplication",
                         "oa{sv}", [app, {}])
        self.app_registered = True

    async def _unregister_app(self):
        if self.app_registered:
            self.app_registered = False
            try:
                await self._call("org.bluez", self.adapter_path, "org.bluez.GattManager1",
                                 "UnregisterApplication", "o", [f"{self.base}/app"])
            except Exception as e:
                log.debug("unregister app: %s", e)
        for path in reversed(self.exported):
            self.bus.unexport(path)
        self.exported.clear()
        self.chars.clear()

    # -- advertising ----------------------------------------------------------------------------
    async def _advertise(self, a):
        async with self._adv_lock:
            await self._advertise_locked(a)

    async def _advertise_locked(self, a):
        ad = advmod.parse(bytes.fromhex(a["adv"]))
        ad.update_from(advmod.parse(bytes.fromhex(a["resp"])))
        props: dict[str, Any] = {"Type": "peripheral" if a.get("connectable", True) else "broadcast"}
        if ad.name:
            props["LocalName"] = ad.name
        if ad.uuids:
            props["ServiceUUIDs"] = list(ad.uuids)
        if ad.manufacturer:
            props["ManufacturerData"] = {k: Variant("ay", v) for k, v in ad.manufacturer.items()}
        sd = {k: Variant("ay", v) for k, v in ad.service_data.items()}
        if self.rig:
            sd[HEARTBEAT_UUID] = Variant("ay", bytes([self._hb & 0xFF]))
        props["ServiceData"] = sd
        ms = max(20, int(a.get("interval_us", 100000)) // 1000)
        props["MinInterval"] = props["MaxInterval"] = ms
        if self.adv is not None and self.adv_registered:
            if self.rig and self.adv.props.get("ManufacturerData") != props.get("ManufacturerData"):
                # BlueZoo's scanners keep a registered advertisement's first manufacturer data (the SoC and
                # status bytes); a controller sends new data in its next event: register it afresh
                await self._unadvertise_locked()
            else:
                self.adv.update(**{k: v for k, v in props.items() if k not in ("Type",)})
                return
        self.adv = Advertisement(props)
        path = f"{self.base}/adv0"
        self.bus.export(path, self.adv)
        await self._call("org.bluez", self.adapter_path, "org.bluez.LEAdvertisingManager1",
                         "RegisterAdvertisement", "oa{sv}", [path, {}])
        self.adv_registered = True
        if self.rig and self._hb_task is None:
            self._hb_task = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self):
        try:
            while True:
                await asyncio.sleep(self.heartbeat_s)
                if self.adv is not None and self.adv_registered:
                    self._hb += 1
                    sd = dict(self.adv.props.get("ServiceData", {}))
                    sd[HEARTBEAT_UUID] = Variant("ay", bytes([self._hb & 0xFF]))
                    self.adv.update(ServiceData=sd)
        except asyncio.CancelledError:
            pass

    async def _unadvertise(self):
        async with self._adv_lock:
            await self._unadvertise_locked()

    async def _unadvertise_locked(self):
        if self._hb_task:
            self._hb_task.cancel()
            self._hb_task = None
        if self.adv_registered:
            self.adv_registered = False
            try:
                await self._call("org.bluez", self.adapter_path, "org.bluez.LEAdvertisingManager1",
                                 "UnregisterAdvertisement", "o", [f"{self.base}/adv0"])
            except Exception as e:
                log.debug("unregister adv: %s", e)
        if self.adv is not None:
            self.bus.unexport(f"{self.base}/adv0")
            self.adv = None

    # -- connections ----------------------------------------------------------------------------
    def _on_signal(self, msg: Message):
        if msg.message_type != MessageType.SIGNAL or msg.member != "PropertiesChanged":
            return
        path = msg.path or ""
        if not path.startswith(self.adapter_path + "/dev_") or path.count("/") != 4:
            return
        iface, changed = msg.body[0], msg.body[1]
        if iface != "org.bluez.Device1" or "Connected" not in changed:
            return
        if changed["Connected"].value:
            self._connected(path)
        else:
            self._disconnected(path)

    def _addr(self, path: str) -> bytes:
        return _addr_bytes(path.rsplit("/dev_", 1)[1].replace("_", ":"))

    def _connected(self, path: str):
        if path in self.conns or self.writer is None or not self.app_registered:
            return
        conn = self.next_conn
        self.next_conn += 1
        self.conns[path] = conn
        self.stats["connects"] += 1
        self.mtu = max(23, min(self.dev_mtu, CENTRAL_MTU))
        for ch in self.chars.values():
            ch.notifying = False
        self.logf(f"central {path.rsplit('/', 1)[1]} connected (conn {conn}, ATT MTU {self.mtu})")
        # advertising stops on a connection; the firmware restarts it when it wants
        asyncio.ensure_future(self._unadvertise())
        self._send(OP_CONNECT, struct.pack("<HB", conn, 0) + self._addr(path))
        if self.mtu > 23:
            self._send(OP_MTU, struct.pack("<HH", conn, self.mtu))

    def _disconnected(self, path: str):
        conn = self.conns.pop(path, None)
        if conn is None:
            return
        self.stats["disconnects"] += 1
        for ch in self.chars.values():
            if ch.notifying:
                ch.notifying = False
                ch.emit_properties_changed({"Notifying": False})
        self.logf(f"central {path.rsplit('/', 1)[1]} disconnected (conn {conn})")
        self._send(OP_DISCONNECTED, struct.pack("<HB", conn, 0) + self._addr(path))

    async def _disconnect_path(self, path: str):
        try:
            await self._call("org.bluez", path, "org.bluez.Device1", "Disconnect")
        except Exception as e:
            log.debug("disconnect %s: %s", path, e)
        self._disconnected(path)

    async def _disconnect_all(self):
        for path in list(self.conns):
            await self._disconnect_path(path)

    def on_write(self, device_path: str | None, handle: int, data: bytes):
        if device_path and device_path not in self.conns:
            self._connected(device_path)
        conn = self.conns.get(device_path) if device_path else next(iter(self.conns.values()), None)
        if conn is None:
            return
        self.stats["writes"] += 1
        self._send(OP_WRITE, struct.pack("<HH", conn, handle) + data)

    def on_confirm(self):
        self.confirmed += 1
        self._send(OP_CREDIT, struct.pack("<H", 1))


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass
