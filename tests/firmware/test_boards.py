"""Every boards/*.json validates against boards/schema.json, and the figures are self-consistent."""

import json
from pathlib import Path

import jsonschema
import pytest

from mpy import run_mpy

BOARDS = Path(__file__).resolve().parents[2] / "boards"
FILES = sorted(p for p in BOARDS.glob("*.json") if p.name != "schema.json")
SCHEMA = json.loads((BOARDS / "schema.json").read_text())


def test_schema_is_valid_and_required_boards_exist():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    names = {p.stem for p in FILES}
    assert {"sim", "pico_w", "pico2_w", "esp32s3_devkitc", "feather_nrf52840_sense", "xiao_nrf52840_sense"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_board_validates(path):
    b = json.loads(path.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(b)
    assert b["name"] == path.stem
    s = {k: v["ma"] for k, v in b["power"]["states"].items()}
    # physical ordering every datasheet agrees on
    assert s["deep_sleep"] <= s["light_sleep"] < s["idle"] <= s["active"] <= s["inference"]
    assert s["radio_adv"] < s["radio_tx"]
    assert b["ram"]["heap_bytes"] <= b["ram"]["total_bytes"] or b["name"].startswith("esp32")  # PSRAM heap
    if b["name"] != "sim":
        assert b["mpy_arch"] and b["sensors"]["imu"]["bus"] == "i2c" and b["sensors"]["imu"]["address"] in (0x6A, 0x6B)


def test_schema_rejects_a_broken_board():
    b = json.loads((BOARDS / "pico_w.json").read_text())
    del b["power"]["states"]["deep_sleep"]["source"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(b, SCHEMA)


def test_device_reads_its_board_file():
    """The device side parses every board file with MicroPython's json and finds what the power code needs."""
    code = "import json\n"
    for p in FILES:
        code += (f"b = json.load(open({str(p)!r}))\n"
                 "assert b['power']['states']['light_sleep']['ma'] > 0 and b['battery']['capacity_mah'] > 0\n")
    code += "print('ok')\n"
    assert run_mpy(code).stdout.strip() == b"ok"


def test_every_board_with_a_radio_is_secure_by_default():
    """BLE secure by default (docs/security.md): each shipped board with a radio says so, and the firmware's
    default without a `ble` block is secure too."""
    from mpy import firmware_module
    ble = firmware_module("mote.ble")
    for p in FILES:
        b = json.loads(p.read_text())
        if "ble" in b["link"]["kinds"] or b["name"] == "sim":
            assert b["ble"]["secure"] is True, p.name

    class App:
        class board:
            info = {}
    assert ble.secure_mode(App.board) is True
    App.board.info = {"ble": {"secure": False}}
    assert ble.secure_mode(App.board) is False
    b = json.loads((BOARDS / "pico_w.json").read_text())
    del b["ble"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(b, SCHEMA)                  # a radio board must say how its BLE is secured


def test_one_module_loads_lists_and_validates_boards(tmp_path):
    from motekit import boards
    assert set(boards.names()) == {p.stem for p in FILES}
    assert boards.load("pico_w")["name"] == "pico_w"
    for bad in ("schema", "../boards/pico_w", "nope", ""):
        with pytest.raises(boards.BoardError, match="^unknown board .*: one of esp32s3_devkitc, "):
            boards.load(bad)
    # a board of your own, by path: validated, one line naming the field
    b = json.loads((BOARDS / "pico_w.json").read_text())
    b["ram"]["heap_bytes"] = "lots"
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(b))
    with pytest.raises(boards.BoardError, match=r"mine.json: ram/heap_bytes: 'lots' is not of type 'integer'"):
        boards.load(str(mine))
    mine.write_text("{")
    with pytest.raises(boards.BoardError, match="not readable JSON"):
        boards.load(str(mine))


@pytest.mark.parametrize("args", [["sim", "--board", "nope"], ["power", "simulate", "--board", "nope"],
                                  ["install", "--port", "/dev/null", "--board", "nope"],
                                  ["model", "check", str(BOARDS / "sim.json"), "--board", "nope"]],
                         ids=lambda a: " ".join(a[:2]))
def test_unknown_board_is_worded_once(args):
    import subprocess
    import sys
    from pathlib import Path
    p = subprocess.run([str(Path(sys.executable).with_name("mote")), *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1
    assert p.stderr.startswith("Error: unknown board 'nope': one of esp32s3_devkitc, "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_device_board_file_leaves_out_what_only_the_host_reads():
    """/board.json (mote install, the emulated boards) is the board file without the power simulator's timing,
    model check's infer figures and the sources and notes (the device keeps it parsed in RAM: pico_w's whole
    file took 13.1 KB of the emulated Pico W's heap); everything the firmware reads stays, and the device side
    still parses it."""
    from motekit.boards import device_file
    code = "import json\n"
    for p in FILES:
        b = json.loads(p.read_text())
        d = device_file(b)
        text = json.dumps(d)
        assert "timing" not in d and "infer" not in d and "source" not in text and '"note"' not in text, p.name
        for k in ("name", "ram", "flash", "link", "battery", "usb_detect", "power", "sensors", "sleep"):
            assert d.get(k) == device_file(b[k]) if k in b else True, (p.name, k)
        if "ble" in b:
            assert {k: v for k, v in b["ble"].items() if k != "note"} == d["ble"]
        assert len(text) < len(json.dumps(b)) * 0.6, p.name
        code += (f"b = json.loads({text!r})\n"
                 "assert b['power']['states']['light_sleep']['ma'] > 0 and b['battery']['capacity_mah'] > 0\n")
    assert run_mpy(code + "print('ok')\n").stdout.strip() == b"ok"
