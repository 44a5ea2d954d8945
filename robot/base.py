"""Robot and Camera interfaces (LeRobot-style lifecycle), shared by real and simulated backends.

Every backend — the real WidowX, our MuJoCo WidowX, MetaWorld, dm_control, the numpy fake —
implements these verbs, so the runtime loop (clamkit.runtime) and the recorder drive them all
the same way. numpy only: this package runs on the robot computer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from clamkit.specs import ActionSpec, ArraySpec, ObservationSpec


class DeviceNotConnectedError(RuntimeError):
    """A verb that needs a connected device was called before connect() or after disconnect()."""


class EpisodeFault(RuntimeError):
    """A fault that ends the current episode but leaves the robot able to start the next one with reset(),
    e.g. the WidowX's effort guard: the arm pressed too hard and was stopped. The control loop stops the run
    on it like on any fault, unless told to count it as a failed episode and go on (evaluation, rehearsal)."""


class Robot(abc.ABC):
    """A robot (or simulated robot) that takes continuous actions at a fixed rate.

    Lifecycle: connect() -> reset(seed) -> [get_observation() -> send_action(a)]* -> go_safe() -> disconnect().
    Also a context manager (disconnects on exit).
    """

    name: str = "robot"
    fps: float = 5.0  # natural control rate (Hz); the runtime defaults to it

    @property
    @abc.abstractmethod
    def observation_spec(self) -> ObservationSpec:
        """The keys get_observation() returns (without camera frames, which come from a Camera)."""

    @property
    @abc.abstractmethod
    def action_spec(self) -> ActionSpec:
        """Action dimension, bounds and semantics that send_action() accepts."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start an episode (sim: reset the scene with this seed; real arm: go to the home pose).
        Returns the first observation."""

    @abc.abstractmethod
    def get_observation(self) -> dict[str, np.ndarray]:
        """The current observation, e.g. {"state": float32 (D,)}."""

    @abc.abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Apply one action (already safety-checked) and return the action actually sent."""

    def go_safe(self) -> None:
        """Move to the safe/home pose and hold. Simulators may do nothing."""

    def episode_info(self) -> dict:
        """What the episode achieved so far: {"success": bool} and/or {"return": float}; {} when unknown."""
        return {}

    def episode_done(self) -> bool:
        """True when the episode cannot continue (time limit, termination)."""
        return False

    def render(self, width: int, height: int) -> np.ndarray:
        """Simulators: an RGB uint8 (H, W, 3) frame, upright, for the `sim` camera."""
        raise NotImplementedError(f"{self.name} cannot render; use a real camera")

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        if self.is_connected:
            self.disconnect()


@dataclass
class Frame:
    """One camera frame: RGB uint8 (H, W, 3) plus its capture time on time.monotonic()'s clock."""

    image: np.ndarray
    timestamp: float
    index: int = 0
    depth: np.ndarray | None = None


class Camera(abc.ABC):
    """A colour camera. read() blocks for the next frame; async_read() returns the latest without waiting."""

    name: str = "camera"

    @property
    @abc.abstractmethod
    def spec(self) -> ArraySpec:
        """Shape (H, W, 3) uint8 of the frames read() returns."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> Frame: ...

    def async_read(self) -> Frame:
        return self.read()

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        if self.is_connected:
            self.disconnect()
