"""The virtual board: the firmware under MicroPython's unix port, behind a pseudo-terminal."""

from .supervisor import VirtualBoard, micropython_exe

__all__ = ["VirtualBoard", "micropython_exe"]
