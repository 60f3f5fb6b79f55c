"""Greedy activation-memory planner (the strategy of TFLM's GreedyMemoryPlanner).

Buffers are placed largest first, each at the lowest offset that does not overlap a buffer already
placed whose lifetime intersects its own. Lifetimes are inclusive op-index intervals.
"""


def align(n, a):
    return (n + a - 1) // a * a


def plan(buffers, alignment=4):
    """buffers: list of (size, first, last). Returns (offsets, arena_size)."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], buffers[i][1], i))
    offsets = [None] * len(buffers)
    placed = []
    for i in order:
        size, first, last = buffers[i]
        size = align(size, alignment)
        conflicts = sorted((offsets[j], align(buffers[j][0], alignment)) for j in placed
                           if not (buffers[j][2] < first or last < buffers[j][1]))
        off = 0
        for o, s in conflicts:
            if o >= off + size:
                break
            off = max(off, o + s)
        offsets[i] = off
        placed.append(i)
    arena = max((offsets[i] + align(buffers[i][0], alignment) for i in range(len(buffers))), default=0)
    return offsets, arena


def lower_bound(buffers):
    """The largest total size of buffers live at the same op: no plan can use less."""
    if not buffers:
        return 0
    end = max(b[2] for b in buffers)
    return max(sum(b[0] for b in buffers if b[1] <= t <= b[2]) for t in range(end + 1))
