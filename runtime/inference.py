"""Inference on a worker thread, so the inference watchdog can stop a backend that never returns.

    with InferenceWorker(backend) as worker:
        action = worker.infer(obs, timeout=1.0)   # InferenceTimeout after 1 s; the hung call is abandoned

backend.infer runs on one dedicated daemon thread for the whole run; the loop waits for its answer
at most `timeout` seconds. A call that does not come back in time raises InferenceTimeout on the
loop's thread, which then stops the run the usual way (nothing more is sent, safe pose, recording,
report). The hung call cannot be killed (Python threads cannot be), so it is left on its daemon
thread; the worker refuses further calls.

Every call of a run happens on that same thread: GPU backends with per-thread state (the CUDA
runtime's current device, TensorRT execution contexts) see one thread. TrtBackend makes its device
current on each new thread it is called from (runtime/trt.py, DESIGN §6).
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from clamkit.runtime.safety import InferenceTimeout

_STOP = object()


class InferenceWorker:
    """Runs backend.infer on one daemon thread; infer(obs, timeout) waits at most `timeout` seconds."""

    def __init__(self, backend, name: str = "clamkit-infer"):
        self.backend = backend
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self.hung = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            obs = self._requests.get()
            if obs is _STOP:
                return
            try:
                self._results.put((True, self.backend.infer(obs)))
            except BaseException as e:  # noqa: BLE001 - handed to the loop's thread, re-raised there
                self._results.put((False, e))

    def infer(self, obs: dict[str, np.ndarray], timeout: float | None) -> np.ndarray:
        """backend.infer(obs) on the worker thread; InferenceTimeout when it takes longer than `timeout` s."""
        if self.hung:
            raise InferenceTimeout("the backend is still inside an earlier inference that timed out")
        t0 = time.perf_counter()
        self._requests.put(obs)
        try:
            ok, value = self._results.get(timeout=timeout)
        except queue.Empty:
            self.hung = True
            raise InferenceTimeout(f"inference did not return within {timeout * 1e3:.0f} ms "
                                   f"(waited {(time.perf_counter() - t0) * 1e3:.0f} ms); stopped without its action, "
                                   "the hung call is abandoned") from None
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Let the worker thread end (at once when idle; a hung call keeps its daemon thread)."""
        self._requests.put(_STOP)
        if not self.hung:
            self._thread.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
