"""clamkit: Continuous Latent Action Models, from unlabelled video to a policy on a real arm.

The core (this package) is numpy-only: dataset format, specs, config loading and CLI helpers.
Subpackages: clamkit.trainer (torch), clamkit.export (torch, onnx), clamkit.runtime and
clamkit.robot (numpy + onnxruntime; they never import torch).
"""

from clamkit.errors import (
    BundleError,
    ConfigError,
    DatasetError,
    MissingDependency,
    SpecMismatch,
    UserError,
    require,
)

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "ConfigError",
    "DatasetError",
    "MissingDependency",
    "SpecMismatch",
    "UserError",
    "require",
    "__version__",
]
