"""A wall-clock limit for a block of work, raised as TimeoutError inside the block."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


class CellTimeoutError(TimeoutError):
    """Raised when a distillation or a training run exceeds its time limit."""


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise CellTimeoutError in the block after `seconds`, using SIGALRM.

    The alarm interrupts Python code and sleeping calls; a call that stays inside C code is
    interrupted when it returns to the interpreter. Off the main thread no alarm can be set, so
    the block runs without a limit and a WARNING is logged.
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        logger.warning("no time limit for %s: not on the main thread", what)
        yield
        return

    def expire(signum, frame):  # noqa: ARG001 - signal handler signature
        raise CellTimeoutError(f"{what} exceeded its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
