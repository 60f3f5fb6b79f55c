"""CBOR (RFC 8949) codec for the device, with a cbor2-like API.

    dumps(obj, canonical=False) -> bytes        dump(obj, stream, canonical=False)
    loads(data) -> obj                          load(stream) -> obj
    loads_prefix(data, offset=0) -> (obj, end_offset)
    encode_into(obj, buf, canonical=False) -> buf   (append to an existing bytearray)
    Tag(tag, value), Simple(n), UNDEFINED, CBORDecodeError, CBOREncodeError (both ValueError)

Runs unchanged on CPython, MicroPython and CircuitPython (no viper, no typing, no large int
literals, so it even imports on builds without long ints).

Types: int (any size; beyond 64 bits as bignum tags 2/3), bytes/bytearray/memoryview (encode)
-> bytes (decode), str, list/tuple -> list, dict, bool, None, float, Tag, Simple, UNDEFINED.
Floats are encoded in the shortest of half/single/double that gives back exactly the same
value (NaN always as f97e00). Unknown tags decode to Tag(tag, value); tags 2/3 decode to int.
Map keys that decode to arrays become tuples (so they are hashable), as in cbor2.
MicroPython dicts do not keep insertion order: use canonical=True (cbor2's canonical key order)
when the device must produce the same bytes every time / the same bytes as the host.

Decoding is iterative (no Python recursion, so no RecursionError on the device's small C
stack), nesting is capped at `max_depth` (64), every declared length is checked against the
remaining input before anything is allocated, and any malformed input raises CBORDecodeError
(a ValueError). Text is checked to be valid UTF-8 (MicroPython's own decoder accepts overlong
forms and surrogates, so non-ASCII text is validated here when the platform's is not strict).

Differences from cbor2: `loads` rejects bytes after the first item (cbor2 ignores them;
use loads_prefix to read an item followed by other data), and `load(stream)` reads the whole
stream. Tags 0/1 (date/time) etc. are not interpreted: they decode to Tag. On a board whose
float is single precision (e.g. RP2040), decoded doubles are rounded to single precision.
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython, or a CircuitPython build without the micropython module
    def const(x):
        return x

from math import ldexp

_pack = struct.pack
_unpack = struct.unpack

MAX_DEPTH = const(64)

_ARRAY = const(0)
_MAP = const(1)
_TAG = const(2)


class CBORError(ValueError):
    pass


class CBORDecodeError(CBORError):
    pass


class CBOREncodeError(CBORError):
    pass


class Tag:
    """A tagged data item: `Tag(tag, value)`. Equal to another Tag with the same tag and value."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


class Simple:
    """A simple value other than false/true/null/undefined: 0..19 or 32..255."""

    def __init__(self, value):
        if not (0 <= value < 20 or 32 <= value < 256):
            raise ValueError("invalid simple value")
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Simple) and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.value) ^ 0x5a5a

    def __repr__(self):
        return "simple(%d)" % self.value


class _Undefined:
    def __repr__(self):
        return "undefined"

    def __bool__(self):
        return False


UNDEFINED = _Undefined()  # the CBOR `undefined` value (simple 23)
undefined = UNDEFINED

_SIMPLE = (False, True, None, UNDEFINED)
_NAN = float("nan")
_INF = float("inf")


# ---------------------------------------------------------------- encoding

def _head(buf, mt, n):
    # mt: major type << 5; n: non-negative argument (< 2**64)
    if n < 24:
        buf.append(mt | n)
    elif n < 0x100:
        buf.append(mt | 24)
        buf.append(n)
    elif n < 0x10000:
        buf.append(mt | 25)
        buf.append(n >> 8)
        buf.append(n & 0xFF)
    elif not n >> 32:
        buf.extend(_pack(">BI", mt | 26, n))
    else:
        buf.extend(_pack(">BQ", mt | 27, n))


def _enc_int(buf, v):
    if v >= 0:
        mt = 0x00
    else:
        mt = 0x20
        v = -1 - v
    if not v >> 64:
        _head(buf, mt, v)
        return
    n = 9
    while v >> (8 * n):
        n += 1
    buf.append(0xC2 if mt == 0 else 0xC3)
    _head(buf, 0x40, n)
    buf.extend(v.to_bytes(n, "big"))


def _enc_float(buf, v):
    if v != v:
        buf.extend(b"\xf9\x7e\x00")
        return
    try:
        f = _pack(">f", v)
        exact = _unpack(">f", f)[0] == v
    except OverflowError:  # CPython refuses to pack out-of-range values as 'f'
        exact = False
    if not exact:
        buf.append(0xFB)
        buf.extend(_pack(">d", v))
        return
    # v is exactly a float32 (bytes f); is it also exactly a half?
    b0 = f[0]
    sign = (b0 & 0x80) << 8
    exp = ((b0 & 0x7F) << 1) | (f[1] >> 7)
    mant = ((f[1] & 0x7F) << 16) | (f[2] << 8) | f[3]
    h = -1
    if exp == 0xFF:  # inf (NaN handled above)
        h = sign | 0x7C00
    elif exp == 0 and mant == 0:
        h = sign
    elif exp:
        e = exp - 127
        if -14 <= e <= 15:
            if not mant & 0x1FFF:
                h = sign | ((e + 15) << 10) | (mant >> 13)
        elif -24 <= e < -14:  # half subnormal
            m = mant | 0x800000
            s = -1 - e
            if not m & ((1 << s) - 1):
                h = sign | (m >> s)
    if h < 0:
        buf.append(0xFA)
        buf.extend(f)
    else:
        buf.append(0xF9)
        buf.append(h >> 8)
        buf.append(h & 0xFF)


def encode_into(obj, buf, canonical=False, max_depth=MAX_DEPTH):
    """Append the CBOR encoding of `obj` to bytearray `buf`; return `buf`. See dumps()."""
    # Iterative: a stack of iterators over the children still to encode (also catches cycles
    # as "too deep" instead of running out of memory).
    stack = []
    it = None
    while True:
        if it is not None:
            try:
                obj = next(it)
            except StopIteration:
                if stack:
                    it = stack.pop()
                    continue
                return buf
        t = type(obj)
        if obj is None:
            buf.append(0xF6)
        elif obj is True:
            buf.append(0xF5)
        elif obj is False:
            buf.append(0xF4)
        elif t is int:
            _enc_int(buf, obj)
        elif t is str:
            b = obj.encode("utf-8")
            _head(buf, 0x60, len(b))
            buf.extend(b)
        elif t is bytes or t is bytearray or t is memoryview:
            _head(buf, 0x40, len(obj))
            buf.extend(obj)
        elif t is float:
            _enc_float(buf, obj)
        elif t is list or t is tuple or t is dict or t is Tag or isinstance(obj, (list, tuple, dict, Tag)):
            if (len(stack) + 1 if it is not None else 0) >= max_depth:
                raise CBOREncodeError("nesting too deep (or cyclic)")
            if isinstance(obj, Tag):
                tg = obj.tag
                if type(tg) is not int or tg < 0 or tg >> 64:
                    raise CBOREncodeError("invalid tag number")
                _head(buf, 0xC0, tg)
                nxt = iter((obj.value,))
            elif isinstance(obj, dict):
                _head(buf, 0xA0, len(obj))
                nxt = _kv_canonical(obj, max_depth) if canonical else _kv(obj)
            else:
                _head(buf, 0x80, len(obj))
                nxt = iter(obj)
            if it is not None:
                stack.append(it)
            it = nxt
            continue
        elif t is _Raw:
            buf.extend(obj.b)
        elif t is Simple:
            v = obj.value
            if v < 24:
                buf.append(0xE0 | v)
            else:
                buf.append(0xF8)
                buf.append(v)
        elif obj is UNDEFINED:
            buf.append(0xF7)
        elif isinstance(obj, int):  # int subclasses (CPython bool is caught above)
            _enc_int(buf, int(obj))
        elif isinstance(obj, str):
            b = str(obj).encode("utf-8")
            _head(buf, 0x60, len(b))
            buf.extend(b)
        elif isinstance(obj, (bytes, bytearray)):
            _head(buf, 0x40, len(obj))
            buf.extend(obj)
        elif isinstance(obj, float):
            _enc_float(buf, float(obj))
        else:
            raise CBOREncodeError("cannot encode type %s" % t.__name__)
        if it is None:
            return buf


class _Raw:
    # an already encoded item (a sorted map key)
    def __init__(self, b):
        self.b = b


def _kv(d):
    for k in d:
        yield k
        yield d[k]


def _kv_canonical(d, max_depth):
    # keys sorted by (length, bytes) of their encoding, like cbor2's canonical=True
    # (RFC 8949 section 4.2.3 "length-first" order)
    keys = list(d)
    items = []
    for i in range(len(keys)):
        kb = bytes(encode_into(keys[i], bytearray(), True, max_depth))
        items.append((len(kb), kb, i))
    items.sort()
    for e in items:
        yield _Raw(e[1])
        yield d[keys[e[2]]]


def dumps(obj, canonical=False):
    """Encode `obj` to CBOR bytes.

    Ints and floats always take their shortest form. Maps keep the dict's iteration order,
    unless `canonical`: then keys are sorted as cbor2.dumps(..., canonical=True) does, which
    gives the same bytes as the host. MicroPython dicts do not keep insertion order, so use
    canonical=True on the device when the bytes must be reproducible.
    """
    return bytes(encode_into(obj, bytearray(), canonical))


def dump(obj, fp, canonical=False):
    fp.write(encode_into(obj, bytearray(), canonical))


# ---------------------------------------------------------------- decoding

def _utf8_strict():
    for b in (b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"):
        try:
            b.decode("utf-8")
            return False
        except Exception:
            pass
    return True


_STRICT_UTF8 = _utf8_strict()


def _check_utf8(b):
    # Full RFC 3629 validation (no overlongs, no surrogates, <= U+10FFFF); b is not pure ASCII.
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            k = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if i + k >= n:
            return False
        c = b[i + 1]
        if c < lo or c > hi:
            return False
        j = i + 2
        i += k + 1
        while j < i:
            if b[j] & 0xC0 != 0x80:
                return False
            j += 1
    return True


def _text(b):
    if not _STRICT_UTF8 and b and max(b) > 0x7F and not _check_utf8(b):
        raise CBORDecodeError("invalid UTF-8 in text string")
    try:
        return b.decode("utf-8")
    except UnicodeError:
        raise CBORDecodeError("invalid UTF-8 in text string")


def _tagged(tag, val):
    if tag == 2 or tag == 3:
        if type(val) is not bytes:
            raise CBORDecodeError("bignum must be a byte string")
        n = int.from_bytes(val, "big") if val else 0
        return n if tag == 2 else -1 - n
    return Tag(tag, val)


def _half(h):
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = ldexp(m, -24)
    elif e == 31:
        v = _NAN if m else _INF
    else:
        v = ldexp(m + 1024, e - 25)
    return -v if h & 0x8000 else v


def _err_trunc():
    return CBORDecodeError("truncated CBOR data")


def _decode(data, pos, max_depth):
    # Decode one data item of `data` starting at `pos`; return (obj, end). Iterative.
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError("CBOR data must be bytes, bytearray or memoryview")
    end = len(mv)
    if pos < 0 or pos > end:
        raise ValueError("offset out of range")
    stack = []  # frames: [kind, container or tag, remaining (-1: indefinite), map key or stack marker]
    nokey = stack  # marker: "no key pending" (any object that is never a decoded value)
    while True:
        if pos >= end:
            raise _err_trunc()
        ib = mv[pos]
        pos += 1
        mt = ib >> 5
        ai = ib & 0x1F
        if ai < 24:
            arg = ai
        elif ai < 28:
            n = 1 << (ai - 24)
            if pos + n > end:
                raise _err_trunc()
            if n == 1:
                arg = mv[pos]
            else:
                arg = int.from_bytes(mv[pos:pos + n], "big")
            pos += n
        elif ai == 31:
            arg = -1
        else:
            raise CBORDecodeError("reserved additional information value")

        if mt == 0:
            if arg < 0:
                raise CBORDecodeError("indefinite length integer")
            val = arg
        elif mt == 1:
            if arg < 0:
                raise CBORDecodeError("indefinite length integer")
            val = -1 - arg
        elif mt == 2 or mt == 3:
            if arg >= 0:
                if arg > end - pos:
                    raise _err_trunc()
                val = bytes(mv[pos:pos + arg])
                pos += arg
                if mt == 3:
                    val = _text(val)
            else:  # indefinite: definite-length chunks of the same major type, then break
                chunks = []
                while True:
                    if pos >= end:
                        raise _err_trunc()
                    cb = mv[pos]
                    pos += 1
                    if cb == 0xFF:
                        break
                    if cb >> 5 != mt:
                        raise CBORDecodeError("invalid chunk in indefinite length string")
                    n = cb & 0x1F
                    if n >= 24:
                        if n >= 28:
                            raise CBORDecodeError("invalid chunk in indefinite length string")
                        k = 1 << (n - 24)
                        if pos + k > end:
                            raise _err_trunc()
                        n = int.from_bytes(mv[pos:pos + k], "big")
                        pos += k
                    if n > end - pos:
                        raise _err_trunc()
                    c = bytes(mv[pos:pos + n])
                    pos += n
                    if mt == 3:
                        c = _text(c)
                    chunks.append(c)
                val = ("" if mt == 3 else b"").join(chunks)
        elif mt == 4 or mt == 5:
            if arg == 0:
                val = [] if mt == 4 else {}
            else:
                if arg > 0 and arg > (end - pos) >> (mt - 4):
                    raise _err_trunc()  # each element takes at least one byte
                if len(stack) >= max_depth:
                    raise CBORDecodeError("nesting too deep")
                stack.append([mt - 4, [] if mt == 4 else {}, arg, nokey])
                continue
        elif mt == 6:
            if arg < 0:
                raise CBORDecodeError("indefinite length tag")
            if len(stack) >= max_depth:
                raise CBORDecodeError("nesting too deep")
            stack.append([_TAG, arg, 1, nokey])
            continue
        else:  # major type 7
            if ai < 20:
                val = Simple(ai)
            elif ai < 24:
                val = _SIMPLE[ai - 20]
            elif ai == 24:
                if arg < 32:
                    raise CBORDecodeError("invalid two-byte simple value")
                val = Simple(arg)
            elif ai == 25:
                val = _half(arg)
            elif ai == 26:
                val = _unpack(">f", mv[pos - 4:pos])[0]
            elif ai == 27:
                val = _unpack(">d", mv[pos - 8:pos])[0]
            else:  # break
                if not stack:
                    raise CBORDecodeError("unexpected break")
                fr = stack[-1]
                if fr[2] >= 0 or fr[0] == _TAG or fr[3] is not nokey:
                    raise CBORDecodeError("unexpected break")
                stack.pop()
                val = fr[1]

        # attach the finished value to its parents, closing containers that become complete
        while True:
            if not stack:
                return val, pos
            fr = stack[-1]
            kind = fr[0]
            if kind == _ARRAY:
                fr[1].append(val)
            elif kind == _MAP:
                if fr[3] is nokey:
                    if type(val) is list:
                        val = tuple(val)
                    try:
                        hash(val)
                    except TypeError:
                        raise CBORDecodeError("unhashable map key")
                    fr[3] = val
                    break
                fr[1][fr[3]] = val
                fr[3] = nokey
            else:
                stack.pop()
                val = _tagged(fr[1], val)
                continue
            n = fr[2]
            if n < 0:
                break
            n -= 1
            if n:
                fr[2] = n
                break
            stack.pop()
            val = fr[1]


def loads_prefix(data, offset=0, max_depth=MAX_DEPTH):
    """Decode the first data item at `offset`; return (obj, end_offset). Later bytes are left alone."""
    return _decode(data, offset, max_depth)


def loads(data, max_depth=MAX_DEPTH):
    """Decode exactly one CBOR data item; trailing bytes are an error (unlike cbor2)."""
    obj, end = _decode(data, 0, max_depth)
    if end != len(data):
        raise CBORDecodeError("extra data after the CBOR item")
    return obj


def load(fp, max_depth=MAX_DEPTH):
    """Decode the one CBOR item that makes up the rest of the stream `fp`."""
    return loads(fp.read(), max_depth)
