"""Child processes the toolkit and its tests start (brokers, relays, virtual boards)."""

import signal
import subprocess


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
    """Ask a child to end with `sig`, kill it if it has not after `timeout` s; its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
