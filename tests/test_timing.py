"""StepTimes: wall and CPU seconds per step of a long job."""

import os
import subprocess
import sys
import time

from vtc_fw.app.timing import StepTimes

TICK = 1 / os.sysconf("SC_CLK_TCK")
"""Resolution of the kernel's CPU counters that StepTimes reads: each reading of a step's start
or end may lag by up to one tick."""


def test_sleeping_step_takes_wall_time_but_no_cpu():
    times = StepTimes()
    with times.step("wait"):
        time.sleep(0.2)
    assert times.wall["wait"] >= 0.2
    assert times.cpu["wait"] < 0.1


def test_busy_step_takes_cpu_and_repeated_steps_add_up():
    times = StepTimes()
    for _ in range(2):
        with times.step("busy"):
            deadline = time.process_time() + 0.1
            while time.process_time() < deadline:
                pass
    assert times.cpu["busy"] >= 0.2 - 4 * TICK
    assert list(times.as_dict()) == ["busy"]
    assert times.summary() == (
        f"busy {times.wall['busy']:.0f} s ({times.cpu['busy']:.0f} s CPU); "
        f"total {times.wall['busy']:.0f} s"
    )


def test_failing_step_is_still_timed():
    times = StepTimes()
    try:
        with times.step("broken"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "broken" in times.wall


def test_cpu_of_child_processes_counts_in_the_step():
    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    times = StepTimes()
    with times.step("child"):
        subprocess.run([sys.executable, "-c", code], check=True)
    assert times.cpu["child"] >= 0.3 - 2 * TICK
