# Stand-ins for the app's collaborators (tests/firmware/test_app_wiring), each as far as the app looks at it.


def store_with(a, path="/gesture.mtm"):
    """The app's store says a confirmed model is active, read from `path` (no upload needed)."""
    a.store.active = lambda: {"slot": "a", "name": "gesture", "version": "1", "seq": 1, "state": "confirmed"}
    a.store.path = lambda slot, ext: path


# the app's BLE link as far as its sleep decisions look at it: the port's connection and advertising
class P:
    conn = None
    advertising = True


class B:
    port = P()
