# The console (the REPL's stdin/stdout) as the link's byte port, shared by the MicroPython board HAL (USB-CDC)
# and the emulated-board HAL (the qemu port's UART). Reads go byte by byte after select.poll says one is there:
# readinto on sys.stdin.buffer blocks until the buffer is full on most ports.
import sys


class StdioSerial:
    """The REPL's stdin/stdout as a byte link (USB-CDC on a board, the UART on an emulated core): readinto()
    never blocks, wait() sleeps until input or timeout."""

    def __init__(self):
        import select
        self.rx = sys.stdin.buffer
        self.tx = sys.stdout.buffer
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.one = bytearray(1)

    def begin(self):
        import micropython
        micropython.kbd_intr(-1)          # 0x03 inside frames is data

    def end(self):
        import micropython
        micropython.kbd_intr(3)

    def _ready(self):
        for _ in self.poller.ipoll(0):
            return True
        return False

    def readinto(self, buf):
        n = 0
        one = self.one
        lim = len(buf)
        while n < lim and self._ready():
            if not self.rx.readinto(one):
                break
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        self.tx.write(data)

    def wait(self, ms):
        for _ in self.poller.ipoll(ms):
            return True
        return False
