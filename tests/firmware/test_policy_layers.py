"""A board's own policy (its board file's `policy`) under /policy.json, under the interpreters: the layers, a reset
to the board's policy, and a hand-broken board policy that never stops the board."""

import json
from pathlib import Path

from mpy import run_mpy

HARNESS = Path(__file__).parent / "harness"
BOARDS = Path(__file__).parents[2] / "boards"

RUN = """
import json
from mote import policy, power
from powerboard import Board
def board(pol):
    b = Board()
    if pol is not None:
        b.info["policy"] = pol
    return b
def looks(p):
    return [r.get("screen_s") for r in p.policy.spec["bands"]]
out = {}
BOARD = json.loads(%r)
p = power.Power(board(BOARD))
out["board"] = [looks(p), power.LOAD_ERROR, power.BOARD_ERROR, p.get()["override"]]
p.set({"quiet_s": 9})                                  # /policy.json over the board's policy, not over DEFAULT
out["set"] = [looks(p), p.policy.spec["quiet_s"]]
q = power.Power(board(BOARD))                          # a reboot: board, then the stored override
out["reboot"] = [looks(q), q.policy.spec["quiet_s"], q.override]
q.set(None)                                            # reset: back to the board's policy
out["reset"] = [looks(q), q.policy.spec["quiet_s"], q.override]
bad = power.Power(board({"bands": [{"name": "x", "soc": 400}]}))
out["bad"] = [looks(bad) == [r.get("screen_s") for r in policy.DEFAULT["bands"]], power.BOARD_ERROR]
out["hostile"] = []
for pol in ("x", [1, 2], {"bands": [[[[]]]]}, {"bands": [{"name": "n" * 5000}]}, {"hb_s": -1}):
    h = power.Power(board(pol))                        # a hand-edited /board.json: DEFAULT runs, one line says why
    out["hostile"].append([h.policy.spec["hb_s"] == policy.DEFAULT["hb_s"], (power.BOARD_ERROR or "")[:22]])
none = power.Power(board(None))
out["none"] = [looks(none) == [r.get("screen_s") for r in policy.DEFAULT["bands"]], power.BOARD_ERROR]
print(json.dumps(out))
"""


def test_board_policy_is_the_base_under_policy_json(tmp_path):
    pico = json.loads((BOARDS / "pico_w.json").read_text())["policy"]
    r = json.loads(run_mpy(RUN % json.dumps(pico), root=tmp_path, path=[HARNESS]).stdout.decode().splitlines()[-1])
    mine = [b.get("screen_s") for b in pico["bands"]]
    assert mine == [3, 6, None, None]
    assert r["board"] == [mine, None, None, {}]
    assert r["set"] == [mine, 9] and r["reboot"] == [mine, 9, {"quiet_s": 9}]
    assert r["reset"][0] == mine and r["reset"][1] != 9 and r["reset"][2] == {}
    # a board file edited by hand on the flash: DEFAULT runs, and the app says why once (an `ev`)
    assert r["bad"][0] is True and r["bad"][1].startswith("board policy refused (") and "soc" in r["bad"][1]
    assert r["hostile"] == [[True, "board policy refused ("]] * 5, r["hostile"]
    assert r["none"] == [True, None]
