// motekit: what an emulated Cortex-M board needs from its host, through ARM semihosting (qemu -semihosting).
//
//   moteemu.Flash(path, block_size, block_count)  a block device on a host file (the board's flash: littlefs
//                                                  lives in it, survives restarts and costs the guest no RAM)
//   moteemu.cmdline()                              the string qemu was given with -append (the board's seed,
//                                                  unique id, sensor settings: see hal/emu.py)
//   mp_hal_time_ns()                               the host's wall clock (littlefs file times), missing from
//                                                  the qemu port
//   moteemu_init() / moteemu_deinit()              the board's ROM (MICROPY_PORT_INIT_FUNC/DEINIT_FUNC, set by
//                                                  our board dirs): at boot mount the flash named by -append
//                                                  ("flash=PATH blocks=N") as littlefs at / and run /main.py
//                                                  ("main=0": don't); a soft reset (Ctrl-D) ends qemu, and the
//                                                  supervisor boots the board again, so each boot is a cold one
//
// Every size and offset is checked before the host is asked to touch guest memory.

#include <stdlib.h>
#include <string.h>
#include "py/runtime.h"
#include "py/mperrno.h"
#include "py/mphal.h"
#include "extmod/vfs.h"
#include "py/compile.h"
#include "py/lexer.h"
#include "py/parse.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_SEEK 0x0a
#define SYS_FLEN 0x0c
#define SYS_TIME 0x11
#define SYS_GET_CMDLINE 0x15

#define MODE_RPLUS_B 3

static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__ ("r0") = op;
    register const void *r1 __asm__ ("r1") = arg;
    __asm__ volatile ("bkpt 0xab" : "+r" (r0) : "r" (r1) : "memory");
    return r0;
}

uint64_t mp_hal_time_ns(void) {
    uint32_t s = semihost(SYS_TIME, NULL);
    return (uint64_t)s * 1000000000ull;
}

typedef struct _moteemu_flash_obj_t {
    mp_obj_base_t base;
    int32_t handle;
    uint32_t block_size;
    uint32_t block_count;
} moteemu_flash_obj_t;

static const mp_obj_type_t moteemu_flash_type;

static mp_obj_t flash_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 3, 3, false);
    size_t len;
    const char *path = mp_obj_str_get_data(args[0], &len);
    mp_int_t bs = mp_obj_get_int(args[1]);
    mp_int_t bc = mp_obj_get_int(args[2]);
    if (bs < 128 || bs > 65536 || (bs & (bs - 1)) || bc < 2 || bc > 0x7fffffff / bs) {
        mp_raise_ValueError(MP_ERROR_TEXT("bad flash geometry"));
    }
    uint32_t a[3] = {(uint32_t)path, MODE_RPLUS_B, (uint32_t)len};
    int32_t h = (int32_t)semihost(SYS_OPEN, a);
    if (h < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    uint32_t f[1] = {(uint32_t)h};
    int32_t flen = (int32_t)semihost(SYS_FLEN, f);
    if (flen < 0 || (uint32_t)flen < (uint32_t)(bs * bc)) {
        semihost(SYS_CLOSE, f);
        mp_raise_ValueError(MP_ERROR_TEXT("flash file smaller than its geometry"));
    }
    moteemu_flash_obj_t *self = mp_obj_malloc(moteemu_flash_obj_t, type);
    self->handle = h;
    self->block_size = bs;
    self->block_count = bc;
    return MP_OBJ_FROM_PTR(self);
}

// the byte range [block*bs + off, +len) must lie inside the device
static uint32_t flash_addr(moteemu_flash_obj_t *self, mp_obj_t block_in, size_t nargs, const mp_obj_t *args,
    size_t len) {
    mp_int_t block = mp_obj_get_int(block_in);
    mp_int_t off = nargs > 0 ? mp_obj_get_int(args[0]) : 0;
    uint64_t total = (uint64_t)self->block_size * self->block_count;
    if (block < 0 || off < 0 || (uint64_t)block * self->block_size + (uint64_t)off + len > total) {
        mp_raise_OSError(MP_EIO);
    }
    return (uint32_t)block * self->block_size + (uint32_t)off;
}

static void flash_seek(moteemu_flash_obj_t *self, uint32_t addr) {
    uint32_t a[2] = {(uint32_t)self->handle, addr};
    if (semihost(SYS_SEEK, a) != 0) {
        mp_raise_OSError(MP_EIO);
    }
}

static mp_obj_t flash_readblocks(size_t n_args, const mp_obj_t *args) {
    moteemu_flash_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_WRITE);
    uint32_t addr = flash_addr(self, args[1], n_args - 3, args + 3, buf.len);
    flash_seek(self, addr);
    uint32_t a[3] = {(uint32_t)self->handle, (uint32_t)buf.buf, (uint32_t)buf.len};
    if (semihost(SYS_READ, a) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(flash_readblocks_obj, 3, 4, flash_readblocks);

static mp_obj_t flash_writeblocks(size_t n_args, const mp_obj_t *args) {
    moteemu_flash_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_READ);
    uint32_t addr = flash_addr(self, args[1], n_args - 3, args + 3, buf.len);
    flash_seek(self, addr);
    uint32_t a[3] = {(uint32_t)self->handle, (uint32_t)buf.buf, (uint32_t)buf.len};
    if (semihost(SYS_WRITE, a) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(flash_writeblocks_obj, 3, 4, flash_writeblocks);

static mp_obj_t flash_ioctl(mp_obj_t self_in, mp_obj_t op_in, mp_obj_t arg_in) {
    moteemu_flash_obj_t *self = MP_OBJ_TO_PTR(self_in);
    (void)arg_in;
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(self->block_count);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(self->block_size);
        case MP_BLOCKDEV_IOCTL_INIT:
        case MP_BLOCKDEV_IOCTL_DEINIT:
        case MP_BLOCKDEV_IOCTL_SYNC:
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:   // a host file needs no erase before a write
            return MP_OBJ_NEW_SMALL_INT(0);
        default:
            return mp_const_none;
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(flash_ioctl_obj, flash_ioctl);

static const mp_rom_map_elem_t flash_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&flash_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&flash_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&flash_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(flash_locals, flash_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    moteemu_flash_type,
    MP_QSTR_Flash,
    MP_TYPE_FLAG_NONE,
    make_new, flash_make_new,
    locals_dict, &flash_locals
    );

static mp_obj_t moteemu_cmdline(void) {
    char buf[256];
    uint32_t a[2] = {(uint32_t)buf, sizeof(buf)};
    if (semihost(SYS_GET_CMDLINE, a) != 0 || a[1] >= sizeof(buf)) {
        return mp_obj_new_str("", 0);
    }
    return mp_obj_new_str(buf, a[1]);
}
static MP_DEFINE_CONST_FUN_OBJ_0(moteemu_cmdline_obj, moteemu_cmdline);

static const mp_rom_map_elem_t moteemu_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_moteemu) },
    { MP_ROM_QSTR(MP_QSTR_Flash), MP_ROM_PTR(&moteemu_flash_type) },
    { MP_ROM_QSTR(MP_QSTR_cmdline), MP_ROM_PTR(&moteemu_cmdline_obj) },
};
static MP_DEFINE_CONST_DICT(moteemu_globals, moteemu_globals_table);

const mp_obj_module_t moteemu_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&moteemu_globals,
};

MP_REGISTER_MODULE(MP_QSTR_moteemu, moteemu_module);

// The ROM, run at the end of mp_init (before the REPL): what a board's _boot.py + main.py do.
static const char moteemu_rom[] =
    "import vfs, sys, os, moteemu\n"
    "def _rom():\n"
    "    a = {}\n"
    "    for w in moteemu.cmdline().split():\n"
    "        k, e, v = w.partition('=')\n"
    "        if e:\n"
    "            a[k] = v\n"
    "    sys.path[:] = ['', '/lib', '/']\n"
    "    if 'flash' not in a:\n"
    "        return\n"
    "    bd = moteemu.Flash(a['flash'], 4096, int(a['blocks']))\n"
    "    try:\n"
    "        vfs.mount(vfs.VfsLfs2(bd), '/')\n"
    "    except OSError:\n"
    "        vfs.VfsLfs2.mkfs(bd)\n"
    "        vfs.mount(vfs.VfsLfs2(bd), '/')\n"
    "    os.chdir('/')\n"
    "    if a.get('main') == '0':\n"
    "        return\n"
    "    try:\n"
    "        os.stat('/main.py')\n"
    "    except OSError:\n"
    "        print('no main.py on the board\\'s flash')\n"
    "        return\n"
    "    exec(open('/main.py').read(), {'__name__': '__main__'})\n"
    "_rom()\n"
    "del _rom, vfs, sys, os, moteemu\n";

void moteemu_init(void) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_lexer_t *lex = mp_lexer_new_from_str_len(MP_QSTR__lt_stdin_gt_, moteemu_rom, sizeof(moteemu_rom) - 1, 0);
        qstr source_name = lex->source_name;
        mp_parse_tree_t tree = mp_parse(lex, MP_PARSE_FILE_INPUT);
        mp_obj_t fun = mp_compile(&tree, source_name, false);
        mp_call_function_0(fun);
        nlr_pop();
    } else {
        mp_obj_print_exception(&mp_plat_print, MP_OBJ_FROM_PTR(nlr.ret_val));
    }
}

void moteemu_deinit(void) {
    // a soft reset: end qemu (status 0); the supervisor boots the board again with its ROM
    exit(0);                            // the qemu port's exit(): semihosting SYS_EXIT
}
