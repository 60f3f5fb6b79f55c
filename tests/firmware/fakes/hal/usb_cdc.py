# fake CircuitPython `usb_cdc`: the data port as two byte buffers
class _Port:
    def __init__(self): self.rx = bytearray(); self.tx = bytearray(); self.timeout = 1
    @property
    def in_waiting(self): return len(self.rx)
    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n
    def write(self, b): self.tx.extend(b)
data = _Port()
console = None
