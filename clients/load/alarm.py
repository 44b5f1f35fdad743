"""Alarm: a callback at an absolute CLOCK_MONOTONIC time, to the microsecond where Linux allows.

Event-loop timers tick in whole milliseconds, too coarse to pace calls 200 us apart, and
spinning would make the load generator a CPU hog the kernel preempts for whole time slices.
A timerfd set to the next due time wakes the loop through add_reader instead; elsewhere the
loop's own timer serves.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from typing import Any

clock = time.monotonic_ns  # CLOCK_MONOTONIC: the timerfd's clock, shared by all processes
CLOCK_MONOTONIC, TFD_TIMER_ABSTIME, TFD_NONBLOCK, TFD_CLOEXEC = 1, 1, 0o4000, 0o2000000


class Alarm:
    """Calls back at an absolute CLOCK_MONOTONIC time: a timerfd (us precision) where Linux has
    one, else the event loop's timer (ms)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Any) -> None:
        self.loop, self.callback = loop, callback
        self.fd = -1
        self._handle: asyncio.TimerHandle | None = None
        try:
            self._libc = ctypes.CDLL(None, use_errno=True)
            self.fd = self._libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        except (OSError, AttributeError):
            self.fd = -1
        if self.fd >= 0:
            loop.add_reader(self.fd, self._fired)

    def set(self, at_ns: int) -> None:
        if self.fd >= 0:
            at_ns = max(at_ns, 1)
            spec = (ctypes.c_long * 4)(0, 0, at_ns // 1_000_000_000, at_ns % 1_000_000_000)
            self._libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, spec, None)
        else:
            self.cancel()
            self._handle = self.loop.call_later(max(0.0, (at_ns - clock()) / 1e9), self.callback)

    def _fired(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return
        self.callback()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.fd >= 0:
            spec = (ctypes.c_long * 4)(0, 0, 0, 0)
            self._libc.timerfd_settime(self.fd, 0, spec, None)

    def close(self) -> None:
        self.cancel()
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
