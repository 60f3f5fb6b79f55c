# motekit's CircuitPython unix variant: the board-like interpreter the tests and `mote sim --impl circuitpython`
# run the firmware under (built by motekit.cpbuild with VARIANT_DIR pointing here). Started from upstream's
# `coverage` settings (the only unix variant CircuitPython maintains), minus what no board has or what needs
# sources outside the unix subset: no gcov, no C++, no frozen manifest, no ffi/threads/socket.
# CircuitPython's own `time` and `hashlib` bindings (shared-bindings/) replace MicroPython's, with this
# variant's port layer (cp_port.c, common-hal/) under them, as a board port supplies its own.
FROZEN_MANIFEST =
MICROPY_PY_FFI = 0
MICROPY_PY_THREAD = 0
# termios: only the virtual board's HAL (mote/hal/sim.py) uses it, to put its console in raw mode
# (CircuitPython's unix Makefile sets the flag but does not compile the module)
MICROPY_PY_TERMIOS = 1
SRC_C += modtermios.c
MICROPY_PY_SOCKET = 0
MICROPY_PY_SSL = 0
MICROPY_PY_BTREE = 0
CIRCUITPY_MESSAGE_COMPRESSION_LEVEL = 1

# single-precision floats like every board (the unix sources promote to double in places)
CFLAGS += -DMICROPY_CPYTHON_EXCEPTION_CHAIN=1 -Wno-error=double-promotion -Wno-error=float-conversion \
	-Wno-double-promotion -Wno-float-conversion

SRC_C += \
	shared/runtime/context_manager_helpers.c \
	shared-bindings/util.c \
	shared-bindings/traceback/__init__.c \
	shared-module/traceback/__init__.c \
	shared-bindings/struct/__init__.c \
	shared-module/struct/__init__.c \
	shared-bindings/time/__init__.c \
	shared-bindings/hashlib/__init__.c \
	shared-bindings/hashlib/Hash.c \

CFLAGS += \
	-DCIRCUITPY_TRACEBACK=1 \
	-DCIRCUITPY_STRUCT=1 \
	-DCIRCUITPY_TIME=1 \
	-DCIRCUITPY_HASHLIB=1 \
	-DCIRCUITPY_HASHLIB_MBEDTLS=0
