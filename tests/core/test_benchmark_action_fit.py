"""benchmarks/action_fit.py's statistics (the diagnostic that reads a bundle's actions against the expert's)."""

import numpy as np
import pytest


def test_fit_reports_shrinkage_bias_and_constant_dimensions(benchmark_module):
    rng = np.random.default_rng(0)
    truth = np.stack([rng.normal(0, 2, 5000), rng.normal(0, 1, 5000), np.ones(5000)], axis=1)
    pred = np.stack([0.5 * truth[:, 0], truth[:, 1] + 0.3, np.full(5000, 0.4)], axis=1)
    f = benchmark_module("action_fit").fit(pred, truth)
    assert f["slope"][0] == pytest.approx(0.5) and f["corr"][0] == pytest.approx(1.0)  # shrunk, not noisy
    assert f["slope"][1] == pytest.approx(1.0) and f["bias_std"][1] == pytest.approx(0.3, rel=0.05)  # offset by 0.3 std
    # the expert never moves dim 2: no slope or correlation to speak of, but the mean error is there
    assert f["slope"][2] is None and f["corr"][2] is None and f["bias_std"][2] is None
    assert f["mean_error"][2] == pytest.approx(-0.6)
