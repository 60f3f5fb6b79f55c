# @micropython.viper COBS encoder for mote.frame: same signature and byte-identical output as
# mote.frame.cobs_encode (the pure version every port runs). Imported by mote.frame with a fallback: on a
# port without the native emitter (CircuitPython builds without it, the webassembly port) this module fails
# to compile and mote.frame keeps the pure encoder.
#
# One pass, one byte at a time in machine code, no allocation: about 1-3 us per KB on x86-64 where the
# pure encoder costs a Python loop iteration per zero byte (0.4 ms for a KB of zeros).
# Every intermediate is an index below 2**16, so 32-bit and 64-bit words compute the same.
import micropython


@micropython.viper
def cobs_encode(dst, o: int, src, n: int) -> int:
    """Write COBS(src[:n]) into bytearray dst at offset o (room for n + n // 254 + 1 bytes); return the
    offset after it. No zero byte is written; a full 254-byte block at the very end gets no empty block
    after it (as the host's `cobs` package)."""
    d = ptr8(dst)
    s = ptr8(src)
    at = o              # where the current block's code byte goes
    o += 1
    code = 1
    i = 0
    while i < n:
        b = s[i]
        i += 1
        if b == 0:
            d[at] = code
            at = o
            o += 1
            code = 1
        else:
            d[o] = b
            o += 1
            code += 1
            if code == 0xFF and i < n:
                d[at] = code
                at = o
                o += 1
                code = 1
    d[at] = code
    return o
