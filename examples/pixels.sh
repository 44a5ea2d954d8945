#!/usr/bin/env bash
# Pixels end to end on a laptop CPU: WidowX 250s in MuJoCo, 64x64 camera frames -> CLAM -> ONNX -> the robot loop.
# Usage: bash examples/pixels.sh [WORKDIR] [TASK]   (default ./demo-pixels close-drawer; re-running reuses what exists)
# About 30 minutes on 2 cores (8,000 LAM steps). Tasks: reach-block push-button place-block close-drawer.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-demo-pixels}
TASK=${2:-close-drawer}
export MUJOCO_GL=${MUJOCO_GL:-egl}

. examples/venv.sh

echo "== 1/4 record: 100 expert episodes as unlabelled video + 50 labelled play episodes, 64x64 frames"
clam-record widowx-sim --task $TASK --episodes 100 --policy expert --image-size 64 --no-actions --out $W/expert --quiet
clam-record widowx-sim --task $TASK --episodes 50 --policy play --image-size 64 --out $W/play --quiet

echo "== 2/4 train CLAM from pixels with the CPU recipe"
if [ -f $W/run/policy.pt ]; then echo "(exists: $W/run)"; else
  clam-train --config configs/widowx-image-cpu.yaml --unlabelled $W/expert --labelled $W/play --out $W/run \
    $( [ -d $W/run ] && echo --resume )
fi

echo "== 3/4 export: one graph from raw 640x480 camera frames (crop + resize inside), parity-checked"
clam-export $W/run --out $W/bundle --frame 640x480

echo "== 4/4 run it on camera frames through the robot loop (unseen seeds)"
clam-eval $W/bundle --env widowx-sim:$TASK --episodes 20 --json $W/eval.json
