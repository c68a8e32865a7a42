"""Everything the runner says on the terminal. The only module that writes to stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

_COLORS = ("36", "32", "33", "35", "34", "96", "92", "93", "95", "94")
_RESET = "\033[0m"
_BOLD_RED = "\033[1;31m"
_BOLD = "\033[1m"
_DIM = "\033[2m"


def shown_path(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Console:
    """Prefixed child output, status lines and errors; colored only on a terminal."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._on_terminal = self._out.isatty()
        self._color = self._on_terminal and "NO_COLOR" not in os.environ
        self._prefix_width = 12
        self._name_colors: dict[str, str] = {}
        self._closed: set[TextIO] = set()

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self._color else text

    def _write(self, stream: TextIO, text: str) -> None:
        if stream in self._closed:
            return
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):
            # The reader went away (`make run | head`, a closed terminal window): keep
            # running, stop echoing there.
            self._closed.add(stream)

    def terminal_hung_up(self) -> bool:
        """Whether the terminal this console wrote to has gone (its window was closed)."""
        if not self._on_terminal:
            return False
        try:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        except OSError:
            return True
        return False

    def register_names(self, names: Sequence[str]) -> None:
        """Fix the prefix width and color of every child name up front."""
        self._prefix_width = max([self._prefix_width, *(len(name) for name in names)])
        for index, name in enumerate(names):
            self._name_colors[name] = f"\033[{_COLORS[index % len(_COLORS)]}m"

    def child_line(self, name: str, line: str) -> None:
        """One line of a child's output, prefixed with its name."""
        prefix = f"{name:<{self._prefix_width}} |"
        self._write(self._out, f"{self._paint(self._name_colors.get(name, ''), prefix)} {line}")

    def info(self, message: str) -> None:
        """A status line of the runner itself."""
        self._write(self._out, self._paint(_BOLD, "localrun") + f" {message}")

    def detail(self, message: str) -> None:
        """A line explaining the error before it, e.g. a log excerpt (on stderr)."""
        self._write(self._err, self._paint(_DIM, f"    {message}"))

    def error(self, message: str) -> None:
        """A problem, on stderr."""
        self._write(self._err, self._paint(_BOLD_RED, "localrun") + f" {message}")

    def table(self, rows: Sequence[Sequence[str]]) -> None:
        """Rows of columns, aligned."""
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            self._write(self._out, "  " + "  ".join(cells).rstrip())
