"""clamkit.runtime: run an exported bundle on a robot or in simulation (numpy + onnxruntime only).

    from clamkit.runtime import LoopOptions, make_backend, run_loop, evaluate
    from clamkit.robot.factory import make_robot

    with make_backend("bundles/reach", "auto") as backend:
        summary = run_loop(make_robot("metaworld:reach-v3"), backend, options=LoopOptions(hz=0, episodes=5))

Never imports torch, clamkit.trainer or clamkit.export (tests/core/test_arrows.py checks every import).
"""
from clamkit.runtime.backends import Backend, OrtBackend, TrtBackend, make_backend
from clamkit.runtime.evaluate import evaluate
from clamkit.runtime.loop import LoopOptions, run_loop
from clamkit.runtime.observation import ObservationBuilder
from clamkit.runtime.safety import NonFiniteActions, RuntimeFault, SafetyLayer, StaleFrame
from clamkit.runtime.subscribers import Recorder, Subscriber
from clamkit.runtime.telemetry import Telemetry, format_summary

__all__ = ["Backend", "LoopOptions", "NonFiniteActions", "ObservationBuilder", "OrtBackend", "Recorder", "RuntimeFault", "SafetyLayer",
           "StaleFrame", "Subscriber", "Telemetry", "TrtBackend", "evaluate", "format_summary", "make_backend",
           "run_loop"]
