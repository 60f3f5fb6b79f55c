# firmware/main.py's last line of defence under the interpreters (tests/firmware/test_cpy_surface.py): install()
# puts in an app whose main() raises, a `time` whose sleep only prints (main.py waits 2 s before the reset: not
# here) and a board whose reset() prints and ends the run (SystemExit).
import sys
import mote


class FakeApp:
    @staticmethod
    def main():
        raise ValueError("bad model header")


class FakeTime:
    @staticmethod
    def sleep(s):
        print("sleep", s)


class Board:
    def reset(self):
        print("reset")
        raise SystemExit


def install():
    mote.app = FakeApp
    sys.modules["time"] = FakeTime
    from mote import hal
    hal.load = lambda: Board()
