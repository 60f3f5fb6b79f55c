# The app on the board in memory with a battery (tests/firmware: test_app_wiring, test_report, test_security):
# host frames are fed by hand (board.serial.feed) and the loop's pieces are driven directly, so the tests are
# timing-free. Use: `import appwiring; appwiring.setup(WINDOWS); from appwiring import *`.
import sys, json, binascii, gc, time, micropython
from mote import compat
from mote import app, motion
from fakeboard import Board, Serial

board = a = None


def setup(windows):
    """`windows`: every telemetry() call is one record (the usb row's reporting), for tests that count them."""
    global board, a
    board = Board(info={"link": {"mtu": 1024, "kinds": ["usb-cdc"]},
                        "battery": {"chemistry": "lipo", "internal_mohm": 150}}, power=True)
    a = app.App(board, {"sample_hz": 50, "window": 50, "hop": 25})
    if windows:
        a.power.policy.report = lambda: "window"
        a.reporter.set_mode("window")


def frames_out():
    out = binascii.hexlify(board.serial.out).decode()
    board.serial.out = bytearray()
    return out


def fill_window():
    for i in range(a.win_n):
        a.sample()
