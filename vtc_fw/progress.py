"""Progress bars that suit their output: a live bar on a terminal, a line a minute in a log.

On a terminal tqdm redraws one line in place. Written into a file or a CI log, the same redraws
become thousands of carriage-return-separated updates (``vtc-fw run > run.log``); there the bar
writes one plain line per :data:`LOG_INTERVAL_S` seconds instead, plus the last one.
"""

import sys
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 60.0
"""Seconds between progress lines when the output is not a terminal."""


class _Lines:
    """A text stream that turns each tqdm refresh into one newline-terminated line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class LogProgress(tqdm):
    """A tqdm bar writing into a log: plain lines at :data:`LOG_INTERVAL_S`, never forced."""


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(**options: Any) -> tqdm:
    """A tqdm bar (same options) that writes a line per minute when stderr is not a terminal."""
    stream = options.pop("file", None) or sys.stderr
    if is_terminal(stream):
        return tqdm(file=stream, **options)
    options["mininterval"] = max(options.get("mininterval", 0.0), LOG_INTERVAL_S)
    options["maxinterval"] = max(options.get("maxinterval", 0.0), LOG_INTERVAL_S)
    return LogProgress(file=_Lines(stream), ascii=True, **options)


def refresh_if_terminal(bar: tqdm) -> None:
    """Redraw a live bar (tqdm stops redrawing on ``update(0)``); in a log, do nothing."""
    if not isinstance(bar, LogProgress):
        bar.refresh()
