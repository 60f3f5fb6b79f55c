// motekit's CircuitPython unix variant (see mpconfigvariant.mk): upstream coverage's feature level, with what
// every CircuitPython board has and lacks, so firmware that would fail on a board fails here too.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EVERYTHING)

// Single-precision floats, as on the nRF52840/RP2040/ESP32-S3 CircuitPython builds.
#define MICROPY_FLOAT_IMPL             (MICROPY_FLOAT_IMPL_FLOAT)

#include "variants/mpconfigvariant_common.h"

// No native/viper emitter on any CircuitPython board.
#define MICROPY_EMIT_X64               (0)

// CircuitPython's `time` (monotonic, monotonic_ns, sleep, struct_time, localtime, mktime, time: no ticks_*)
// comes from shared-bindings/time, not MicroPython's extmod/modtime.c.
#undef MICROPY_PY_TIME
#define MICROPY_PY_TIME                (0)
#undef MICROPY_PY_TIME_TIME_TIME_NS
#define MICROPY_PY_TIME_TIME_TIME_NS   (0)

// CircuitPython's `hashlib` (new("sha256") only: no hashlib.sha256()) from shared-bindings/hashlib.
#define MICROPY_PY_HASHLIB             (0)

// No `deflate` module (store.py then offers uncompressed uploads only, as the hello's caps say).
#define MICROPY_PY_DEFLATE             (0)
#define MICROPY_PY_DEFLATE_COMPRESS    (0)

// Boards have no `vfs` module (this unix tree has none either); os.mount/os.VfsPosix stay for the harness
// that mounts a test directory as the board's flash at /.

#define MICROPY_PY_SYS_SETTRACE        (0)
#define MICROPY_WARNINGS_CATEGORY      (1)
#define MICROPY_PY_CRYPTOLIB           (0)
#define MICROPY_PY_CRYPTOLIB_CTR       (0)
#define MICROPY_PY_MICROPYTHON_RINGIO  (0)
#define MICROPY_PY_STRUCT              (0)
#define MICROPY_VFS_ROM_IOCTL          (0)
#define MICROPY_SCHEDULER_STATIC_NODES (0)
#define MICROPY_PY_OS_UNAME            (1)
#define MICROPY_HW_BOARD_NAME          "motekit virtual board"
#define MICROPY_HW_MCU_NAME            MICROPY_PY_SYS_PLATFORM
#define MICROPY_BANNER_MACHINE MICROPY_PY_SYS_PLATFORM " [" MICROPY_PLATFORM_COMPILER "] version"
