# Sourced by the examples from the repository root: create .venv with everything on first use, then activate it.
if [ ! -x .venv/bin/clam-train ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q torch==2.13.0     # first: else pip resolves the multi-GB CUDA build
  .venv/bin/pip install -q -e '.[all]'
fi
. .venv/bin/activate
