"""Progress into a file is a line at intervals, not a redraw every poll (issue 22, item 10)."""

import io
import time

from vtc_fw.progress import LOG_INTERVAL_S, progress_bar, refresh_if_terminal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_into_a_file_a_thousand_updates_give_a_few_lines():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="FEFF", file=log)
    for _ in range(1000):
        bar.update(1)
        refresh_if_terminal(bar)  # the main job's poll: no effect in a log
    bar.close()
    lines = log.getvalue().splitlines()
    assert 1 <= len(lines) <= 3 and "\r" not in log.getvalue()
    assert lines[-1].startswith("FEFF") and "1000/1000" in lines[-1]
    assert LOG_INTERVAL_S >= 30


def test_on_a_terminal_the_bar_redraws_in_place():
    screen = Terminal()
    bar = progress_bar(total=3, desc="FEFF", file=screen)
    for _ in range(3):
        bar.update(1)
        refresh_if_terminal(bar)
        time.sleep(0.01)
    bar.close()
    assert "\r" in screen.getvalue()
