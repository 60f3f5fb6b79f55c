"""One progress style for every long step (`mote flash`, `mote install`, `mote power simulate`): a labelled rich
bar on stderr with what is done of the total, a rate and an ETA.

The rate is the caller's measure of real progress over wall time since the step started (for a transfer:
bytes the board acknowledged), never rich's own estimate from recent updates, so the bar and the command's
final summary give the same figure. On a terminal the bar moves; in a pipe or a log it is printed once, as it
ended.
"""

from __future__ import annotations

import time


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GiB"


def human_rate(rate: float, unit: str = "B") -> str:
    return f"{human_bytes(rate)}/s" if unit == "B" else f"{rate:.2f} {unit}/s"


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds + 0.5)
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Bar:
    """with Bar("uploading", total) as bar: bar.update(done) ... bar.log("an event")."""

    def __init__(self, label: str, total: int | None, unit: str = "B", quiet: bool = False):
        self.label, self.total, self.unit, self.quiet = label, total, unit, quiet
        self.t0 = time.monotonic()
        self.start = 0          # where this run began (a resumed transfer does not count what came before)
        self.done = 0
        self.t_end = None       # when done reached total: the rate stops there (a later step is not this one)
        self._p = None

    # -- figures -----------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return max(1e-6, (self.t_end or time.monotonic()) - self.t0)

    def rate(self) -> float:
        return (self.done - self.start) / self.elapsed()

    def remaining(self) -> float | None:
        r = self.rate()
        if not self.total or r <= 0:
            return None
        return max(0.0, (self.total - self.done) / r)

    def _amount(self) -> str:
        if self.unit == "B":
            if not self.total:
                return human_bytes(self.done)
            d, t = human_bytes(self.done).split(), human_bytes(self.total).split()
            return f"{d[0]}/{t[0]} {t[1]}" if d[1] == t[1] else f"{' '.join(d)}/{' '.join(t)}"
        return f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit} done"

    def _fields(self) -> dict:
        if self.unit != "B" and not self.total:      # steps of unknown number and length: no rate, no ETA
            return {"amount": self._amount(), "rate": "", "eta": ""}
        return {"amount": self._amount(), "rate": human_rate(self.rate(), self.unit),
                "eta": "ETA " + eta(self.remaining())}

    # -- rich -------------------------------------------------------------------------------------------
    def __enter__(self):
        return self

    def _start(self):
        """The bar appears with the first figure (a step that fails before it leaves one error line only)."""
        if self.quiet or self._p is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        # fits 80 columns: label 26, bar 15, amount, rate, ETA
        self._p = Progress(TextColumn("{task.description:<26.26}"), BarColumn(bar_width=15),
                           TextColumn("{task.fields[amount]:>15}"), TextColumn("{task.fields[rate]:>11}"),
                           TextColumn("{task.fields[eta]}"),
                           console=Console(stderr=True, highlight=False), transient=False)
        self._p.start()
        self._task = self._p.add_task(self.label, total=self.total, **self._fields())

    def __exit__(self, etype, *exc):
        if self._p is not None:
            if etype is not None:
                self._p.live.transient = True     # a failure is one line, not a bar and a line
            else:
                self._redraw()
            self._p.stop()
        return False

    def _redraw(self):
        self._start()
        if self._p is not None:
            self._p.update(self._task, completed=self.done, total=self.total, description=self.label,
                           **self._fields())

    def update(self, done: int, total: int | None = None, label: str | None = None, start: int | None = None):
        self.done = done
        if total is not None:
            self.total = total
        if label is not None:
            self.label = label
        if start is not None:
            self.start = start
        if self.total and done >= self.total and self.t_end is None:
            self.t_end = time.monotonic()
        self._redraw()

    def restart(self, label: str, total: int | None, unit: str | None = None):
        """A new step on the same bar (its own clock)."""
        self.t0, self.start, self.done, self.total, self.label = time.monotonic(), 0, 0, total, label
        self.t_end = None
        if unit:
            self.unit = unit
        self._redraw()

    def log(self, msg: str):
        self._start()
        if self._p is not None:
            self._p.console.print(msg, markup=False, highlight=False)
