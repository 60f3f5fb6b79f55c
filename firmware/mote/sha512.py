"""SHA-512 (FIPS 180-4) in pure Python, for MicroPython ports that ship no sha512.

hashlib-like: ``h = sha512(); h.update(b"..."); h.digest()``, or ``sha512(data).digest()``.

Each 64-bit word is kept as two 32-bit halves (hi, lo), so that on ports with 63-bit small ints
(the unix port and other 64-bit builds) every intermediate value stays a small int: no big-int
object is allocated in the rounds. Left shifts are at most 30 bits before masking, so no value
exceeds 2**62. On 32-bit ports (31-bit small ints) the code is still correct, only slower.
Meant for Ed25519 (a few blocks per signature), not for bulk data.

Where the native emitter exists (MicroPython on rp2, esp32, nrf, unix...), the compression
function comes from mote.sha512_viper instead: on 32-bit ports, whose small ints are only 31
bits wide, the pure-Python halves turn into big ints and cost ~10x more per block.
"""

from array import array
from struct import pack, unpack_from

try:
    from mote.sha512_viper import compress as _vcompress
except Exception:  # CPython, CircuitPython, builds without viper: pure Python
    _vcompress = None

_M = 0xFFFFFFFF

_KH = (
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
    0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    0xca273ece, 0xd186b8c7, 0xeada7dd6, 0xf57d4f7f,
    0x06f067aa, 0x0a637dc5, 0x113f9804, 0x1b710b35,
    0x28db77f5, 0x32caab7b, 0x3c9ebe0a, 0x431d67c4,
    0x4cc5d4be, 0x597f299c, 0x5fcb6fab, 0x6c44198c,
)
_KL = (
    0xd728ae22, 0x23ef65cd, 0xec4d3b2f, 0x8189dbbc,
    0xf348b538, 0xb605d019, 0xaf194f9b, 0xda6d8118,
    0xa3030242, 0x45706fbe, 0x4ee4b28c, 0xd5ffb4e2,
    0xf27b896f, 0x3b1696b1, 0x25c71235, 0xcf692694,
    0x9ef14ad2, 0x384f25e3, 0x8b8cd5b5, 0x77ac9c65,
    0x592b0275, 0x6ea6e483, 0xbd41fbd4, 0x831153b5,
    0xee66dfab, 0x2db43210, 0x98fb213f, 0xbeef0ee4,
    0x3da88fc2, 0x930aa725, 0xe003826f, 0x0a0e6e70,
    0x46d22ffc, 0x5c26c926, 0x5ac42aed, 0x9d95b3df,
    0x8baf63de, 0x3c77b2a8, 0x47edaee6, 0x1482353b,
    0x4cf10364, 0xbc423001, 0xd0f89791, 0x0654be30,
    0xd6ef5218, 0x5565a910, 0x5771202a, 0x32bbd1b8,
    0xb8d2d0c8, 0x5141ab53, 0xdf8eeb99, 0xe19b48a8,
    0xc5c95a63, 0xe3418acb, 0x7763e373, 0xd6b2b8a3,
    0x5defb2fc, 0x43172f60, 0xa1f0ab72, 0x1a6439ec,
    0x23631e28, 0xde82bde9, 0xb2c67915, 0xe372532b,
    0xea26619c, 0x21c0c207, 0xcde0eb1e, 0xee6ed178,
    0x72176fba, 0xa2c898a6, 0xbef90dae, 0x131c471b,
    0x23047d84, 0x40c72493, 0x15c9bebc, 0x9c100d4c,
    0xcb3e42b6, 0xfc657e2a, 0x3ad6faec, 0x4a475817,
)
_IV = (
    0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b,
    0x3c6ef372, 0xfe94f82b, 0xa54ff53a, 0x5f1d36f1,
    0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f,
    0x1f83d9ab, 0xfb41bd6b, 0x5be0cd19, 0x137e2179,
)


def _compress(st, data, off, wh, wl):
    """Process the 128-byte block at data[off:off+128] into state list st (16 halves)."""
    w = unpack_from(">32I", data, off)
    i = 0
    while i < 16:
        wh[i] = w[2 * i]
        wl[i] = w[2 * i + 1]
        i += 1
    M = _M
    while i < 80:
        # s0 = sigma0(W[i-15]) = ROTR1 ^ ROTR8 ^ SHR7
        xh = wh[i - 15]
        xl = wl[i - 15]
        s0h = ((xh >> 1) ^ ((xl & 1) << 31) ^ (xh >> 8) ^ (xl << 24) ^ (xh >> 7)) & M
        s0l = ((xl >> 1) ^ ((xh & 1) << 31) ^ (xl >> 8) ^ (xh << 24) ^ (xl >> 7) ^ (xh << 25)) & M
        # s1 = sigma1(W[i-2]) = ROTR19 ^ ROTR61 ^ SHR6
        xh = wh[i - 2]
        xl = wl[i - 2]
        s1h = ((xh >> 19) ^ (xl << 13) ^ (xl >> 29) ^ (xh << 3) ^ (xh >> 6)) & M
        s1l = ((xl >> 19) ^ (xh << 13) ^ (xh >> 29) ^ (xl << 3) ^ (xl >> 6) ^ (xh << 26)) & M
        lo = s0l + s1l + wl[i - 7] + wl[i - 16]
        wl[i] = lo & M
        wh[i] = (s0h + s1h + wh[i - 7] + wh[i - 16] + (lo >> 32)) & M
        i += 1
    ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl = st
    KH = _KH
    KL = _KL
    i = 0
    while i < 80:
        # T1 = h + Sigma1(e) + Ch(e, f, g) + K[i] + W[i]; Sigma1 = ROTR14 ^ ROTR18 ^ ROTR41
        tl = (hl + (((el >> 14) ^ (eh << 18) ^ (el >> 18) ^ (eh << 14) ^ (eh >> 9) ^ (el << 23)) & M)
              + (gl ^ (el & (fl ^ gl))) + KL[i] + wl[i])
        th = (hh + (((eh >> 14) ^ (el << 18) ^ (eh >> 18) ^ (el << 14) ^ (el >> 9) ^ (eh << 23)) & M)
              + (gh ^ (eh & (fh ^ gh))) + KH[i] + wh[i])
        hh = gh
        hl = gl
        gh = fh
        gl = fl
        fh = eh
        fl = el
        el = dl + tl
        eh = (dh + th + (el >> 32)) & M
        el &= M
        dh = ch
        dl = cl
        ch = bh
        cl = bl
        bh = ah
        bl = al
        # T2 = Sigma0(a) + Maj(a, b, c); Sigma0 = ROTR28 ^ ROTR34 ^ ROTR39 (b, c are the old a, b)
        al = (tl + (((bl >> 28) ^ (bh << 4) ^ (bh >> 2) ^ (bl << 30) ^ (bh >> 7) ^ (bl << 25)) & M)
              + ((bl & cl) | (dl & (bl | cl))))
        ah = (th + (((bh >> 28) ^ (bl << 4) ^ (bl >> 2) ^ (bh << 30) ^ (bl >> 7) ^ (bh << 25)) & M)
              + ((bh & ch) | (dh & (bh | ch))) + (al >> 32)) & M
        al &= M
        i += 1
    v = (ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl)
    i = 0
    while i < 16:
        lo = st[i + 1] + v[i + 1]
        st[i + 1] = lo & M
        st[i] = (st[i] + v[i] + (lo >> 32)) & M
        i += 2


_KA = array("I", [v for i in range(80) for v in (_KH[i], _KL[i])]) if _vcompress else None


class sha512:
    """Incremental SHA-512; ``digest()`` does not disturb the running state."""

    digest_size = 64
    block_size = 128

    def __init__(self, data=None):
        self._st = array("I", _IV)
        self._buf = b""
        self._len = 0
        self._vc = _vcompress  # per object, so a test can force the pure-Python path
        if self._vc:
            self._w = array("I", bytes(640))
        else:
            self._wh = [0] * 80
            self._wl = [0] * 80
        if data:
            self.update(data)

    def _block(self, st, data, off):
        if self._vc:
            self._vc(st, data, off, self._w, _KA, 0xFFFFFFFF)
        else:
            _compress(st, data, off, self._wh, self._wl)

    def update(self, data):
        mv = memoryview(data)
        n = len(mv)
        self._len += n
        off = 0
        if self._buf:
            need = 128 - len(self._buf)
            self._buf += bytes(mv[:need])
            if len(self._buf) < 128:
                return
            self._block(self._st, self._buf, 0)
            self._buf = b""
            off = need
        end = n - ((n - off) & 127)
        while off < end:
            self._block(self._st, mv, off)
            off += 128
        self._buf = bytes(mv[off:])

    def copy(self):
        c = sha512()
        c._vc = self._vc
        if not c._vc:
            c._wh = [0] * 80
            c._wl = [0] * 80
        c._st = array("I", self._st)
        c._buf = self._buf
        c._len = self._len
        return c

    def digest(self):
        st = array("I", self._st)
        n = self._len
        tail = self._buf + b"\x80" + bytes((111 - n) & 127) + pack(">QQ", n >> 61, (n << 3) & 0xFFFFFFFFFFFFFFFF)
        off = 0
        while off < len(tail):
            self._block(st, tail, off)
            off += 128
        return pack(">16I", *st)

    def hexdigest(self):
        return "".join("%02x" % b for b in self.digest())
