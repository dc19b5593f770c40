"""What the demo prints: lines, indented blocks, numbered steps with their time, commands."""

from __future__ import annotations

import time
from typing import TextIO


class Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def block(self, text: str, indent: str = "    ") -> None:
        for row in text.rstrip("\n").splitlines():
            self.line(indent + row)

    def step(self, title: str) -> None:
        elapsed = time.monotonic() - self.started
        self.line()
        self.line(f"== {title}  [{elapsed:.0f}s]")

    def command(self, text: str) -> None:
        self.line(f"  $ {text}")
