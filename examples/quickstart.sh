#!/usr/bin/env bash
# The main job, end to end on a laptop CPU: record -> train -> export -> run in simulation.
# Usage: bash examples/quickstart.sh [WORKDIR]   (default ./demo; re-running resumes/reuses what exists)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-demo}
export MUJOCO_GL=${MUJOCO_GL:-egl}

. examples/venv.sh

TASK=button-press-v3
echo "== 1/4 record: 50 expert episodes (their actions are never used by CLAM) + 25 noisy play episodes"
clam-record metaworld --task $TASK --episodes 50 --policy expert --out $W/expert --quiet
clam-record metaworld --task $TASK --episodes 25 --policy play --out $W/play --quiet

echo "== 2/4 train CLAM (latent action model + action decoder, relabel, latent policy)"
if [ -f $W/run/policy.pt ]; then echo "(exists: $W/run)"; else
  clam-train --config configs/metaworld-state-quick.yaml --unlabelled $W/expert --labelled $W/play --out $W/run \
    $( [ -d $W/run ] && echo --resume )
fi

echo "== 3/4 export one verified ONNX graph"
clam-export $W/run --out $W/bundle

echo "== 4/4 run the exported policy in simulation through the robot loop"
clam-eval $W/bundle --env metaworld:$TASK --episodes 20 --seed 1000 --max-steps 200 --json $W/eval.json  # seeds unseen in training
