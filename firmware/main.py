# Board entry point: run the motekit firmware. A crash reboots the board after a pause (a field
# device must not sit at a traceback); the link's break sequence or `repl` request leaves for the REPL.
import time

try:
    from mote import app
    app.main()
except KeyboardInterrupt:
    print("motekit: interrupted; this is the REPL")
except Exception as e:
    from mote.compat import print_exception
    print_exception(e)
    print("motekit: crashed; rebooting in 2 s (Ctrl-C now to stay at the REPL)")
    time.sleep(2)
    from mote import hal
    hal.load().reset()
