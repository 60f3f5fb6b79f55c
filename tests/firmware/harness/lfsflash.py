# littlefs on a RAM block device mounted at / : a board's flash, with a real ENOSPC when it is full
# (tests/firmware/test_never_bricked). Use: `from lfsflash import mount, fill_flash; mount(BLOCKS)`.
import vfs


class RAM:
    def __init__(s, n, bs=512):
        s.bs = bs; s.d = bytearray(n * bs)
    def readblocks(s, b, buf, off=0):
        a = b * s.bs + off; buf[:] = s.d[a:a + len(buf)]
    def writeblocks(s, b, buf, off=None):
        a = b * s.bs + (off or 0); s.d[a:a + len(buf)] = buf
    def ioctl(s, op, arg):
        if op == 4: return len(s.d) // s.bs
        if op == 5: return s.bs
        if op == 6: return 0


def mount(blocks):
    """A fresh littlefs of `blocks` 512-byte blocks at / (the test's files behind it are no longer seen)."""
    bd = RAM(blocks)
    vfs.VfsLfs2.mkfs(bd)
    vfs.umount('/')
    vfs.mount(vfs.VfsLfs2(bd), '/')


def fill_flash():
    # a user's file takes every free block (what a runaway log or a huge upload would do)
    f = open('/junk', 'wb')
    try:
        while True:
            f.write(bytes(512))
            f.flush()
    except OSError as e:
        assert e.args[0] == 28, e
    f.close()
