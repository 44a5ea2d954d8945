import os

# Headless rendering must be chosen before mujoco is first imported (DESIGN §2).
os.environ.setdefault("MUJOCO_GL", "egl")
