"""BLE host pieces without a radio or a bus: advertising format, target matching, backoff, pairing logic."""

import asyncio
import sys
from pathlib import Path

import pytest

pytest.importorskip("bleak")

from motekit.ble import adv as advmod  # noqa: E402
from motekit.ble import pairing  # noqa: E402
from motekit.ble.transport import Found, connect_backoff, is_address, matches  # noqa: E402
from motekit.transport import TransportError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from mote import ble as fwble  # noqa: E402  (the firmware's advertising builders run on CPython too)


def test_firmware_advertising_decodes_on_the_host():
    uid = bytes.fromhex("e72d2eaab3dfffa0")
    adv = fwble.adv_payload()
    resp = fwble.resp_payload(fwble.name_for(uid.hex()), uid, 42, fwble.ST_USB | fwble.ST_SPOOL)
    assert len(adv) <= 31 and len(resp) <= 31
    a = advmod.parse(adv)
    a.update_from(advmod.parse(resp))
    assert a.uuids == [advmod.NUS] and a.name == "mote-e72d"
    m = advmod.decode_mote(a.manufacturer)
    assert (m.device, m.soc, m.flags) == ("e72d2eaab3dfffa0", 42, ["usb", "spool"])
    unknown = advmod.decode_mote({0xFFFF: fwble.mfr_data(uid, 255, 0)[2:]})
    assert unknown.soc is None


def test_ad_parser_handles_other_types_and_rejects_truncation():
    data = bytes([3, 0x03, 0x0D, 0x18, 4, 0x16, 0x0F, 0x18, 77, 2, 0x0A, 0xF4])
    a = advmod.parse(data)
    assert a.uuids == ["0000180d-0000-1000-8000-00805f9b34fb"]
    assert a.service_data == {"0000180f-0000-1000-8000-00805f9b34fb": bytes([77])}
    assert a.tx_power == -12
    with pytest.raises(ValueError):
        advmod.parse(bytes([5, 0x09, 0x41]))
    assert advmod.decode_mote({0x004C: b"\x02\x15"}) is None


def test_targets_match_name_address_or_device_id():
    f = Found("mote-e72d", "C0:DE:C0:DE:01:01", -60, advmod.MoteAdv(1, "e72d2eaab3dfffa0", 80, 0))
    assert matches(f, "mote-e72d") and matches(f, "MOTE-E72D")
    assert matches(f, "c0:de:c0:de:01:01") and matches(f, "C0_DE_C0_DE_01_01")
    assert matches(f, "e72d2eaa") and not matches(f, "mote-0000")
    assert is_address("AA:BB:CC:DD:EE:FF") and not is_address("mote-e72d")
    assert f.to_json()["battery"] == 80


def test_connect_backoff_retries_with_growing_delays():
    sleeps, calls = [], []

    def make(target, adapter=None, timeout=0):
        calls.append(target)
        if len(calls) < 5:
            raise TransportError("not yet")
        return "transport"

    assert connect_backoff("b", make=make, sleep=sleeps.append, attempts=6, first=0.25, cap=1.0) == "transport"
    assert sleeps == [0.25, 0.5, 1.0, 1.0]
    calls.clear()
    with pytest.raises(TransportError):
        connect_backoff("b", make=lambda *a, **k: (_ for _ in ()).throw(TransportError("gone")),
                        sleep=sleeps.append, attempts=2)


class FakeOps(pairing.PairOps):
    def __init__(self, paired=False, pair_error=None, pairs=True, bonds=True):
        self.paired, self.pair_error, self.pairs, self.bonds = paired, pair_error, pairs, bonds
        self.log = []

    async def connect(self):
        self.log.append("connect")

    async def is_paired(self):
        return self.paired

    async def pair(self):
        self.log.append("pair")
        if self.pair_error:
            raise RuntimeError(self.pair_error)
        self.paired = self.pairs

    async def is_bonded(self):
        return self.bonds

    async def trust(self):
        self.log.append("trust")

    async def disconnect(self):
        self.log.append("disconnect")


@pytest.mark.parametrize("ops,ok,text,log", [
    (FakeOps(), True, "paired with mote-1 and bonded", ["connect", "pair", "trust", "disconnect"]),
    (FakeOps(bonds=False), True, "not bonded", ["connect", "pair", "trust", "disconnect"]),
    (FakeOps(paired=True), True, "already paired", ["connect", "trust", "disconnect"]),
    (FakeOps(pairs=False), False, "completed no pairing", ["connect", "pair", "disconnect"]),
    (FakeOps(pair_error="org.bluez.Error.AuthenticationRejected"), False, "refused pairing",
     ["connect", "pair", "disconnect"]),
    (FakeOps(pair_error="org.bluez.Error.AlreadyExists"), True, "already paired",
     ["connect", "pair", "trust", "disconnect"]),
])
def test_pairing_decisions(ops, ok, text, log):
    res = asyncio.run(pairing.run_pair(ops, "mote-1"))
    assert res.ok is ok and text in res.message and ops.log == log


def test_zoo_patches_apply():
    pytest.importorskip("bluezoo")
    from bluezoo.adapter import Adapter
    from bluezoo.interfaces.LEAdvertisement import LEAdvertisementInterface

    from motekit.ble import zoo
    zoo.patch()
    assert LEAdvertisementInterface.__dict__["ManufacturerData"].property_signature == "a{qv}"

    class A:
        id = 1
    assert Adapter.__dict__["Roles"].property_getter(A()) == ["peripheral"]
