# motekit's emulator module for MicroPython's qemu port (see moteemu.c)
MOTEEMU_MOD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(MOTEEMU_MOD_DIR)/moteemu.c
