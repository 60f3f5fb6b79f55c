# The app loop on the board in memory (tests/firmware: test_app, test_never_bricked): the script's stdin is the
# host's frames (hex), fed to the board 7 bytes per read, as a UART gives them.
# Use: `import apploop; apploop.setup(CFG); from apploop import *` (CFG None: the app's own config).
import sys, json, binascii, gc, time, micropython
from mote import compat
from mote import app, motion
from fakeboard import Board, Serial

board = a = None


def setup(cfg):
    global board, a
    board = Board(binascii.unhexlify(sys.stdin.buffer.read()), chunk=7)
    a = app.App(board, cfg)
