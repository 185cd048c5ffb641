"""The live progress display: one line a second on stderr while a run goes on.

On a terminal the line is rewritten in place (``\\r``); into a file or a pipe
each second gets a line of its own, so logs stay readable.
"""

from __future__ import annotations

from typing import TextIO

from pigeon.bench.monitor import Tick


def format_tick(tick: Tick, label: str = "") -> str:
    cores = "n/a" if tick.broker_cores is None else f"{tick.broker_cores:.2f} cores"
    return (
        f"{label + '  ' if label else ''}{tick.elapsed_s:6.1f} s  {tick.phase:<13}"
        f"  published {tick.published_per_s:>10,.0f}/s  consumed {tick.consumed_per_s:>10,.0f}/s"
        f"  in-flight {tick.in_flight:>6,}  broker CPU {cores}"
    )


class Progress:
    """An observer for ``Monitor``: call it with each ``Tick``; ``finish()`` at the end."""

    def __init__(self, stream: TextIO, label: str = "", tty: bool | None = None) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty() if tty is None else tty
        self._width = 0

    def __call__(self, tick: Tick) -> None:
        line = format_tick(tick, self.label)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the rewritten line so what follows starts on a fresh one."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._width = 0
