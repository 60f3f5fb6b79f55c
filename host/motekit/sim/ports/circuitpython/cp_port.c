// The port layer under CircuitPython's shared-bindings for motekit's unix variant: the monotonic clock and
// delay behind `time`, the wall clock behind time.time()/localtime(), SHA-256 behind `hashlib`.
#include <string.h>
#include <time.h>

#include "py/mphal.h"
#include "py/runtime.h"
#include "shared/timeutils/timeutils.h"
#include "shared-bindings/time/__init__.h"
#include "shared-bindings/hashlib/__init__.h"
#include "shared-bindings/hashlib/Hash.h"

#include "lib/crypto-algorithms/sha256.c"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// A board's monotonic clock starts at power-on: here, when the interpreter starts (so time.monotonic()'s
// single-precision float is as fine as on a board that just booted, and supervisor.ticks_ms, derived from
// monotonic_ns() as on a board, first wraps ~65 s after start).
static uint64_t boot_ns;

__attribute__((constructor)) static void cp_port_boot(void) {
    boot_ns = now_ns();
}

uint64_t common_hal_time_monotonic_ns(void) {
    return now_ns() - boot_ns;
}

uint64_t common_hal_time_monotonic_ms(void) {
    return common_hal_time_monotonic_ns() / 1000000ull;
}

void common_hal_time_delay_ms(uint32_t delay) {
    mp_hal_delay_ms(delay);
}

mp_obj_t rtc_get_time_source_time(void) {
    timeutils_struct_time_t tm;
    timeutils_seconds_since_epoch_to_struct_time((mp_timestamp_t)time(NULL), &tm);
    return struct_time_from_tm(&tm);
}

bool common_hal_hashlib_new(hashlib_hash_obj_t *self, const char *algorithm) {
    if (strcmp(algorithm, "sha256") != 0) {
        return false;
    }
    sha256_init(&self->sha256);
    return true;
}

void common_hal_hashlib_hash_update(hashlib_hash_obj_t *self, const uint8_t *data, size_t datalen) {
    sha256_update(&self->sha256, data, datalen);
}

void common_hal_hashlib_hash_digest(hashlib_hash_obj_t *self, uint8_t *data, size_t datalen) {
    if (datalen < 32) {
        return;
    }
    CRYAL_SHA256_CTX copy = self->sha256;     // digest() leaves the object usable, as on a board
    sha256_final(&copy, data);
}

size_t common_hal_hashlib_hash_get_digest_size(hashlib_hash_obj_t *self) {
    return 32;
}

// `supervisor.ticks_ms()` as shared-bindings/supervisor defines it (the rest of CircuitPython's supervisor
// module needs a board): milliseconds since start offset so the first wrap at 2**29 comes ~65 s after start,
// always a small int (no allocation, as on a board). Extensible, so a test's fake supervisor.py can extend it.
static mp_obj_t supervisor_ticks_ms(void) {
    uint64_t ms = common_hal_time_monotonic_ms();
    return mp_obj_new_int((mp_int_t)((ms + 0x1fff0000) % (1 << 29)));
}
static MP_DEFINE_CONST_FUN_OBJ_0(supervisor_ticks_ms_obj, supervisor_ticks_ms);

static const mp_rom_map_elem_t supervisor_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_supervisor) },
    { MP_ROM_QSTR(MP_QSTR_ticks_ms), MP_ROM_PTR(&supervisor_ticks_ms_obj) },
};
static MP_DEFINE_CONST_DICT(supervisor_module_globals, supervisor_module_globals_table);

const mp_obj_module_t supervisor_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&supervisor_module_globals,
};

MP_REGISTER_EXTENSIBLE_MODULE(MP_QSTR_supervisor, supervisor_module);
