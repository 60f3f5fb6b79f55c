"""Ed25519 signature verification (RFC 8032, section 5.1.7) in pure Python for MicroPython.

Only ``verify(public_key, message, signature) -> bool`` is public. It never raises (except
MemoryError, which says nothing about the signature): anything malformed (wrong types or
lengths, S >= L, a public key that is not a canonical encoding of a curve point, an R that is
not the canonical encoding of [S]B - [k]A) gives False.

Verification rules (they match the Wycheproof ed25519 vectors):
  * the signature is exactly 64 bytes, the public key exactly 32;
  * A is decoded strictly (RFC 8032 5.1.3): y < p, x = 0 with the sign bit set is rejected;
  * public keys of small order ([8]A = identity) are rejected, as libsodium does: with such a
    key one signature verifies for every message (there is no private key behind one anyway);
  * S < L (no malleability);
  * the cofactorless equation: the canonical encoding of [S]B - [k]A must equal the 32 bytes
    of R, where k = SHA-512(R || A || M) mod L. So a non-canonical R never verifies.

Arithmetic: big ints mod p = 2**255 - 19, extended twisted Edwards coordinates, one shared
doubling chain for [S]B + [k](-A) with width-6 (B, table built once on first use) and width-5
(A) signed sliding windows; inversion and square root by an addition chain (no 3-argument pow).
"""

try:
    from mote.sha512 import sha512
except ImportError:  # pragma: no cover - running from the firmware dir itself
    from sha512 import sha512

_P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED  # 2**255 - 19
_L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED  # group order
_D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3  # -121665/121666
_D2 = 0x2406D9DC56DFFCE7198E80F2EEF3D13000E0149A8283B156EBD69B9426B2F159  # 2 * d
_SQRTM1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0  # sqrt(-1)
_BX = 0x216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A
_BY = 0x6666666666666666666666666666666666666666666666666666666666666658
_B_W = 6  # window widths (odd multiples up to 2**(w-1) - 1 are tabulated)
_A_W = 5


def _sq(x, k):
    """x**(2**k) mod p."""
    P = _P
    while k:
        x = x * x % P
        k -= 1
    return x


def _pow_2_252_3(x):
    """(x**(2**252 - 3), x**3) mod p by the usual addition chain: 252 squarings, 12 products.

    Cheaper than the 3-argument pow on the ports measured (mpz division at every step) and
    needed anyway on ports built without it."""
    P = _P
    x3 = x * x % P * x % P  # 2^2 - 1
    b4 = _sq(x3, 2) * x3 % P  # 2^4 - 1
    b5 = b4 * b4 % P * x % P  # 2^5 - 1
    b10 = _sq(b5, 5) * b5 % P
    b20 = _sq(b10, 10) * b10 % P
    b40 = _sq(b20, 20) * b20 % P
    b80 = _sq(b40, 40) * b40 % P
    b160 = _sq(b80, 80) * b80 % P
    b240 = _sq(b160, 80) * b80 % P
    b250 = _sq(b240, 10) * b10 % P
    return _sq(b250, 2) * x % P, x3


def _inv(z):
    """z**(p-2) = z**-1 mod p (p - 2 = 8 * (2**252 - 3) + 3)."""
    t, z3 = _pow_2_252_3(z % _P)
    return _sq(t, 3) * z3 % _P


def _dbl(p):
    """[2]p in extended coordinates (dbl-2008-hwcd, a = -1)."""
    P = _P
    X, Y, Z, _ = p
    a = X * X % P
    b = Y * Y % P
    c = 2 * Z * Z % P
    s = X + Y
    e = s * s % P - a - b
    g = b - a
    f = g - c
    h = -a - b
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _add(p, q):
    """p + q in extended coordinates (add-2008-hwcd-3, a = -1, k = 2d)."""
    P = _P
    X1, Y1, Z1, T1 = p
    X2, Y2, Z2, T2 = q
    a = (Y1 - X1) * (Y2 - X2) % P
    b = (Y1 + X1) * (Y2 + X2) % P
    c = T1 * _D2 % P * T2 % P
    d = 2 * Z1 * Z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _decode(s):
    """32 bytes -> extended point, or None if not a canonical encoding of a curve point."""
    P = _P
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    yy = y * y % P
    u = yy - 1
    v = (_D * yy + 1) % P
    v3 = v * v % P * v % P
    x = u * v3 % P * _pow_2_252_3(u * v3 % P * v3 % P * v % P)[0] % P  # (p-5)/8 = 2**252 - 3
    vxx = v * x % P * x % P
    if vxx != u % P:
        if vxx != -u % P:
            return None
        x = x * _SQRTM1 % P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _wnaf(n, w):
    """Signed sliding-window digits of n (little-endian list of 256; digits odd, |d| < 2**(w-1))."""
    out = [0] * 256
    full = 1 << w
    mask = full - 1
    half = full >> 1
    i = 0
    while n:
        if n & 1:
            d = n & mask
            if d >= half:
                d -= full
            n -= d
            out[i] = d
            n >>= w
            i += w
        else:
            n >>= 1
            i += 1
    return out


_BTAB = None


def _base_table():
    """Odd multiples 1, 3, .. 2**(w-1) - 1 of B as affine (y+x, y-x, 2dxy); built once."""
    global _BTAB
    if _BTAB is None:
        P = _P
        B = (_BX, _BY, 1, _BX * _BY % P)
        B2 = _dbl(B)
        pts = [B]
        for _ in range((1 << (_B_W - 2)) - 1):
            pts.append(_add(pts[-1], B2))
        # batch inversion of the Z coordinates (Montgomery's trick): one pow for the table
        acc = [1]
        for p in pts:
            acc.append(acc[-1] * p[2] % P)
        inv = _inv(acc[-1])
        tab = [None] * len(pts)
        for i in range(len(pts) - 1, -1, -1):
            zi = inv * acc[i] % P
            inv = inv * pts[i][2] % P
            x = pts[i][0] * zi % P
            y = pts[i][1] * zi % P
            tab[i] = ((y + x) % P, (y - x) % P, _D2 * x % P * y % P)
        _BTAB = tab
    return _BTAB


def _point_table(p, w):
    """Odd multiples of extended point p as cached (Y+X, Y-X, 2dT, 2Z)."""
    P = _P
    p2 = _dbl(p)
    pts = [p]
    for _ in range((1 << (w - 2)) - 1):
        pts.append(_add(pts[-1], p2))
    tab = []
    for X, Y, Z, T in pts:
        tab.append(((Y + X) % P, (Y - X) % P, _D2 * T % P, 2 * Z % P))
    return tab


def _sb_plus_ka(s, k, A):
    """[s]B + [k]A, as (X, Y, Z). The hot loop: doubling and additions are written inline."""
    P = _P
    ds = _wnaf(s, _B_W)
    dk = _wnaf(k, _A_W)
    btab = _base_table()
    atab = _point_table(A, _A_W)
    X = 0
    Y = 1
    Z = 1
    T = 0
    i = 255
    while i >= 0 and not ds[i] and not dk[i]:
        i -= 1
    started = False
    while i >= 0:
        a_ = ds[i]
        b_ = dk[i]
        if started:
            # doubling (T only when an addition follows)
            aa = X * X % P
            bb = Y * Y % P
            c = Z * Z % P
            c += c
            s_ = X + Y
            e = s_ * s_ % P - aa - bb
            g = bb - aa
            f = g - c
            h = -aa - bb
            X = e * f % P
            Y = g * h % P
            Z = f * g % P
            if a_ or b_:
                T = e * h % P
        if a_:
            if a_ > 0:
                ypx, ymx, t2d = btab[a_ >> 1]
            else:
                ymx, ypx, t2d = btab[(-a_) >> 1]
                t2d = -t2d
            aa = (Y - X) * ymx % P
            bb = (Y + X) * ypx % P
            c = T * t2d % P
            d = Z + Z
            e = bb - aa
            f = d - c
            g = d + c
            h = bb + aa
            X = e * f % P
            Y = g * h % P
            Z = f * g % P
            if b_:
                T = e * h % P
            started = True
        if b_:
            if b_ > 0:
                ypx, ymx, t2d, z2 = atab[b_ >> 1]
            else:
                ymx, ypx, t2d, z2 = atab[(-b_) >> 1]
                t2d = -t2d
            aa = (Y - X) * ymx % P
            bb = (Y + X) * ypx % P
            c = T * t2d % P
            d = Z * z2 % P
            e = bb - aa
            f = d - c
            g = d + c
            h = bb + aa
            X = e * f % P
            Y = g * h % P
            Z = f * g % P
            started = True
        i -= 1
    return X, Y, Z


def _encode(X, Y, Z):
    """Canonical 256-bit little-endian encoding, as an int."""
    P = _P
    zi = _inv(Z)
    x = X * zi % P
    y = Y * zi % P
    return y | ((x & 1) << 255)


def verify(public_key, message, signature):
    """True iff `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    try:
        if len(public_key) != 32 or len(signature) != 64:
            return False
        pk = bytes(public_key)
        sig = bytes(signature)
        s = int.from_bytes(sig[32:], "little")
        if s >= _L:
            return False
        A = _decode(pk)
        if A is None:
            return False
        # small-order (torsion) public key: [8]A is the identity (X = 0, Y = Z)
        A8 = _dbl(_dbl(_dbl(A)))
        if A8[0] == 0:
            return False
        h = sha512(sig[:32])
        h.update(pk)
        h.update(message)
        k = int.from_bytes(h.digest(), "little") % _L
        X, Y, Z = _sb_plus_ka(s, k, (_P - A[0], A[1], 1, _P - A[3]))
        if Z % _P == 0:
            return False
        return _encode(X, Y, Z) == int.from_bytes(sig[:32], "little")
    except MemoryError:
        raise  # not a verdict on the signature: let the caller see it (it verified nothing)
    except Exception:
        return False
