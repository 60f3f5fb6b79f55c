# A BleLink on a board in a `batch` band (batch_s 1, window 600 ms, idle 200 ms), for the BLE port tests
# (tests/firmware: mote.hal.ble_mpy on the `bluetooth` fake, mote.hal.ble_cpy on the adafruit_ble fake).
# Use: `import batchlink; batchlink.start(port); from batchlink import *` (`start` also starts the clock t0).
import time
from mote import ble, compat, policy
from mote.link import Link


class O:
    pass


app = O(); app.board = O(); app.spool = None
app.power = app.battery = O()
spec = policy.merge(policy.DEFAULT, {"bands": [dict(policy.DEFAULT["bands"][0], batch_s=1, soc=0)]})
app.power.policy = policy.Policy(spec, 16384)
app.power.policy.update(80, False)
app.power.soc = 80; app.power.usb = False
link = None
t0 = 0
log = []


def start(port):
    global link, t0
    link = ble.BleLink(port, Link(port, 1024))
    link.radio = lambda: ble.radio(app.power.policy)
    link.batch = lambda: ble.batch_ms(app.power.policy)
    link.sched = ble.Batch(600, 200)
    t0 = compat.ticks_ms()


def wait_until(ms):
    while compat.ticks_diff(compat.ticks_ms(), t0) < ms:
        time.sleep(0.005)
