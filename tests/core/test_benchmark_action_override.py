"""benchmarks/action_override.py's backend wrapper (the diagnostic itself runs 80 episodes and is not a test)."""

import numpy as np


class _Backend:
    name, entered = "fake", False

    def __enter__(self):
        self.entered = True
        return self

    def __exit__(self, *exc):
        self.entered = False

    def infer(self, obs):
        return np.full((1, 7), 0.25, np.float32)


def test_override_forces_one_dimension_and_passes_the_rest_through(benchmark_module):
    mod = benchmark_module("action_override")
    inner = _Backend()
    with mod.Override(inner, 6, 1.0) as be:
        assert inner.entered and be.name == "fake"
        a = be.infer({})
    assert not inner.entered
    assert a[0, 6] == 1.0 and np.all(a[0, :6] == 0.25)
    assert np.all(inner.infer({}) == 0.25)  # the bundle's own output is untouched
