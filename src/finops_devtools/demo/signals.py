"""Ctrl-C and SIGTERM: SIGTERM stops the demo as Ctrl-C does, and nothing cuts its cleanup short."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Final


class Terminated(Exception):  # noqa: N818 (SIGTERM, handled like Ctrl-C)
    pass


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def restore_signals_at_the_end(stack: contextlib.ExitStack) -> None:
    if _in_main_thread():
        for signum in _STOP_SIGNALS:
            stack.callback(signal.signal, signum, signal.getsignal(signum))


def ignore_signals() -> None:
    if _in_main_thread():
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
