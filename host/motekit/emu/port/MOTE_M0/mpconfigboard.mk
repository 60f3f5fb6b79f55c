# motekit's Cortex-M0 (armv6m) stand-in for the RP2040 (pico_w): QEMU's micro:bit machine (an nRF51 SoC, the
# one stock Cortex-M0 machine of qemu-system-arm), its SRAM raised to 256 KiB. The heap comes from the board
# file (make MICROPY_HEAP_SIZE=...). Like the rp2 port (also armv6m) it has the Thumb native/viper emitters.
QEMU_ARCH = arm
QEMU_MACHINE = microbit
QEMU_ARGS += -global nrf51-soc.flash-size=1048576 -global nrf51-soc.sram-size=262144

CFLAGS += -mthumb -mcpu=cortex-m0 -mfloat-abi=soft
CFLAGS += -DQEMU_SOC_NRF51
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M0 (armv6m)"'
# the nRF51 SoC model clocks SysTick at 16 MHz: ticks_us counts virtual time, i.e. retired instructions / 1000
# under -icount shift=0
CFLAGS += -DCPU_FREQ_HZ=16000000u
CFLAGS += -DMICROPY_EMIT_THUMB=1 -DMICROPY_EMIT_THUMB_ARMV7M=0
CFLAGS += -DMICROPY_EMIT_INLINE_THUMB=1 -DMICROPY_EMIT_INLINE_THUMB_ARMV7M=0 -DMICROPY_EMIT_INLINE_THUMB_FLOAT=0

LDSCRIPT = $(BOARD_DIR)/armv6m.ld

SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb1.o

MPY_CROSS_FLAGS += -march=armv6m
MICROPY_VFS_LFS2 = 1
# the board's ROM and soft reset (cmod/moteemu/moteemu.c)
CFLAGS += '-DMICROPY_PORT_INIT_FUNC=extern void moteemu_init(void); moteemu_init()'
CFLAGS += '-DMICROPY_PORT_DEINIT_FUNC=extern void moteemu_deinit(void); moteemu_deinit()'
