"""One way to reach a board: motekit.transport.open by target scheme, and Link's request primitives on it."""

import subprocess
import sys
from pathlib import Path

import pytest

from motekit import transport
from motekit.link import Link, MoteError
from motekit.transport import TransportError

MOTE = str(Path(sys.executable).with_name("mote"))


def test_targets_that_name_nothing_say_so_in_one_line(tmp_path):
    for target, words in [("usb:x", "unknown transport 'usb'"), ("sim:x", "sim:SEED, an integer"),
                          ("serial:", "bad target"), ("", "which board?"),
                          (str(tmp_path / "ttyNONE"), "no such port"), (f"serial:{tmp_path}/ttyNONE", "no such port")]:
        with pytest.raises(TransportError, match=words) as e:
            transport.open(target)
        assert "\n" not in str(e.value)
    p = subprocess.run([MOTE, "info", "--port", "usb:x"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip().splitlines() == [
        "Error: unknown transport 'usb' in 'usb:x': use " + transport.USAGE]


@pytest.mark.e2e                        # starts a virtual board
def test_sim_target_and_pipelined_requests(tmp_path):
    """`sim:SEED` starts a virtual board for the link and stops it on close; submit()/reply() pipeline requests
    (as the flasher's chunks do) and request() skips a late answer to an earlier one."""
    link = Link.open("sim:11", hello_timeout=20, state_dir=tmp_path / "b")
    board = link.t.board
    try:
        assert link.t.name == "sim:11" and link.info["board"] == "sim"
        ids = [link.submit("info"), link.submit("stats"), link.submit("config.get")]
        got = {}
        while len(got) < 3:
            r = link.reply(5)
            assert r is not None
            got[r[0]] = r
        assert sorted(got) == ids and got[ids[0]][2]["id"] == link.device and "samples" in got[ids[1]][2]
        link.submit("stats")                                 # its answer arrives first and is skipped
        assert link.request("info")["id"] == link.device
        with pytest.raises(MoteError, match="no such method|unknown"):
            link.request("no.such.method")
    finally:
        link.close()
    assert board._proc is None or board._proc.poll() is not None
