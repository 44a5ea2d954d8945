"""python -m clamkit.trainer ... == clam-train ... (also: torchrun --nproc-per-node N -m clamkit.trainer ...)."""

from clamkit.trainer.cli import main

main()
