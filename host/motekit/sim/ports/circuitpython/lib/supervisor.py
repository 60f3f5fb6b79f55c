# `supervisor` as CircuitPython boards have it, for the unix port (which has none): what the firmware and its
# HAL use. ticks_ms is shared-bindings/supervisor's: monotonic milliseconds offset by 0x1fff0000, wrapping at
# 2**29, so the first wrap comes ~65 s after start, as on a board after power-on.
import time

_TICKS_PERIOD = 1 << 29


def ticks_ms():
    return (time.monotonic_ns() // 1000000 + 0x1FFF0000) % _TICKS_PERIOD


class _Runtime:
    usb_connected = True
    serial_connected = True
    serial_bytes_available = 0


runtime = _Runtime()
