# motekit's Cortex-M4F (armv7emsp) stand-in for the nRF52840 boards and the RP2350 (pico2_w, a Cortex-M33:
# the nearest core QEMU 7.2 emulates with this port): the MPS2 AN386 FPGA image (Cortex-M4 with FPU).
# The heap comes from the board file (make MICROPY_HEAP_SIZE=...).
QEMU_ARCH = arm
QEMU_MACHINE = mps2-an386

CFLAGS += -mthumb -mcpu=cortex-m4 -mfloat-abi=hard -mfpu=fpv4-sp-d16
CFLAGS += -DQEMU_SOC_MPS2
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M4F (armv7emsp)"'

LDSCRIPT = mcu/arm/mps2.ld

SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o

MPY_CROSS_FLAGS += -march=armv7emsp
MICROPY_FLOAT_IMPL = float
SUPPORTS_HARDWARE_FP_SINGLE = 1
MICROPY_VFS_LFS2 = 1
# the board's ROM and soft reset (cmod/moteemu/moteemu.c)
CFLAGS += '-DMICROPY_PORT_INIT_FUNC=extern void moteemu_init(void); moteemu_init()'
CFLAGS += '-DMICROPY_PORT_DEINIT_FUNC=extern void moteemu_deinit(void); moteemu_deinit()'
