import json

import pytest

from clamkit.runtime.safety import SafetyLayer
from clamkit.runtime.telemetry import Telemetry, format_summary
from clamkit.specs import ActionSpec


def test_summary_percentiles_live_line_and_report(tmp_path):
    tel = Telemetry(hz=5, live_every=0)
    tel.safety = SafetyLayer(ActionSpec(2, (-1, -1), (1, 1), "fake:delta_pos"))
    for i in range(100):
        tel.tick(infer_s=(i + 1) * 1e-4, tick_s=(i + 1) * 2e-4, age_s=0.01, missed=i % 50 == 0)
    tel.episode({"success": True, "return": 3.0})
    tel.episode({"success": False, "return": 1.0})
    s = tel.summary()
    assert s["latency_ms"]["infer"]["p50"] == pytest.approx(5.05, abs=0.01)
    assert s["latency_ms"]["infer"]["max"] == pytest.approx(10.0)
    assert s["latency_ms"]["tick"]["p99"] == pytest.approx(19.802, abs=0.01)
    assert s["missed_deadlines"] == 2 and s["success_rate"] == 0.5 and s["mean_return"] == 2.0
    line = tel.live_line()
    assert line.startswith("tick 100 ep 3") and "missed 2" in line and "clip 0" in line
    path = tel.write(tmp_path / "sub" / "r.json", extra={"robot": "fake"})
    rep = json.loads(path.read_text())
    assert rep["robot"] == "fake" and rep["safety"]["nonfinite"] == 0
    text = format_summary(s)
    assert "success     0.50 over 2 episode(s)" in text and "p99" in text and "missed deadlines 2" in text
