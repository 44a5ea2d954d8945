"""Stop requests for the control loop: SIGINT/SIGTERM finish the current tick, a second SIGINT aborts."""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)


class StopRequest:
    """First SIGINT/SIGTERM: finish the current tick and stop. Second SIGINT: KeyboardInterrupt now.
    Once cleanup (safe pose, recording, report) has begun, signals are logged and ignored.
    Handlers are installed only on the main thread (a loop on another thread stops on faults alone)."""

    def __init__(self):
        self.requested, self.reason, self.cleaning = False, "", False
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.cleaning:  # going to the safe pose, saving the recording: do not break that half-way
            log.warning("%s ignored: stopping safely (safe pose, recording, report) - please wait", signal.Signals(signum).name)
            return
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.reason = True, f"interrupted ({signal.Signals(signum).name})"
        log.warning("%s: stopping after this tick (Ctrl-C again to abort at once)", signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def sleep_until(deadline: float, stop: StopRequest) -> None:
    """Sleep to a perf_counter deadline in short slices, waking early on a stop request."""
    while not stop.requested:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
