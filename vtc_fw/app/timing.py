"""Wall-clock and CPU time of the steps of a long job, for its closing summary."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


def _cpu_seconds() -> float:
    """CPU seconds of this process and its descendants, running or ended and reaped.

    Each live process counts its own time and that of the children it has reaped, so a
    process that ends during a step moves its time into its parent's total, not out of it.
    """
    this = psutil.Process()
    total = 0.0
    for process in [this, *this.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:  # it ended between the listing and the reading
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass
class StepTimes:
    """Seconds spent per named step, in the order the steps ran.

    CPU time counts this process and its descendants (FEFF workers, builder pools, joblib
    workers, an embedded database server started by this process), so on a shared machine
    it says what a step costs when the wall clock does not.
    """

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``name``."""
        wall, cpu = time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + _cpu_seconds() - cpu

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{step: {"wall_s": ..., "cpu_s": ...}}``, rounded to 0.1 s."""
        return {
            name: {"wall_s": round(self.wall[name], 1), "cpu_s": round(self.cpu[name], 1)}
            for name in self.wall
        }

    def summary(self) -> str:
        """One line: each step's wall time, its CPU time in brackets, and the total."""
        parts = [
            f"{name} {_minutes(self.wall[name])} ({_minutes(self.cpu[name])} CPU)"
            for name in self.wall
        ]
        return ", ".join(parts) + f"; total {_minutes(sum(self.wall.values()))}"


def _minutes(seconds: float) -> str:
    """``"42 s"`` below two minutes, else ``"3.5 min"``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
