"""Every clam-* command on bad input, in a real process: exit 2 and exactly one line on stderr,
"error: ..." naming the file or flag, no traceback. With --debug the traceback is shown.

The processes run in parallel (each pays its own import of torch or onnxruntime)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ENV = os.environ | {"MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
SMOKE = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")
SCRIPTS = {  # console script -> the same entry point through the interpreter running the tests
    "clam-record": "from clamkit.record.cli import main; main()",
    "clam-train": "from clamkit.pipeline import train_main; train_main()",
    "clam-export": "from clamkit.pipeline import export_main; export_main()",
    "clam-run": "from clamkit.runtime.cli import run_main; run_main()",
    "clam-eval": "from clamkit.runtime.cli import eval_main; eval_main()",
}


def _cmd(script: str, *args) -> list[str]:
    return [sys.executable, "-c", SCRIPTS[script], *map(str, args)]


def _bad_inputs(tmp: Path, rel) -> list[tuple[str, list[str], str]]:
    """(name, command, text the one error line must contain)."""
    ok = rel.write_dataset(tmp / "ok")
    cases = []

    trunc = rel.write_dataset(tmp / "trunc")
    f = trunc / "episodes" / "000001" / "image.npy"
    f.write_bytes(f.read_bytes()[:-7])
    cases.append(("record info: truncated array", _cmd("clam-record", "info", trunc), str(f)))

    flipped = rel.write_dataset(tmp / "flip")
    f = flipped / "episodes" / "000000" / "state.npy"
    b = bytearray(f.read_bytes())
    b[-3] ^= 0x04
    f.write_bytes(bytes(b))
    cases.append(("record info: bit flip in the data", _cmd("clam-record", "info", flipped), str(f)))

    (tmp / "afile").write_text("x")
    cases.append(("record: --out below a file", _cmd("clam-record", "widowx-sim", "--episodes", "1", "--quiet", "--out",
                                                      tmp / "afile" / "ds"), str(tmp / "afile")))

    cfg = tmp / "binary.yaml"
    cfg.write_bytes(bytes(range(128, 256)))
    cases.append(("train: binary config", _cmd("clam-train", "--config", cfg, "--unlabelled", ok, "--labelled", ok,
                                                "--out", tmp / "r1"), str(cfg)))
    cases.append(("train: NaN learning rate", _cmd("clam-train", "--config", SMOKE, "--unlabelled", ok, "--labelled", ok,
                                                    "--out", tmp / "r2", "--set", "optim.lr=.nan"), "--set optim.lr=.nan"))
    nan = rel.write_dataset(tmp / "nan")
    f = nan / "episodes" / "000001" / "state.npy"
    a = np.load(f)
    a[3, 1] = np.nan
    np.save(f, a)
    m = json.loads((nan / "meta.json").read_text())
    m["episodes"][1].pop("crc32")  # as from a tool that writes no checksums
    (nan / "meta.json").write_text(json.dumps(m))
    cases.append(("train: NaN in an episode", _cmd("clam-train", "--config", SMOKE, "--unlabelled", nan, "--labelled", ok,
                                                    "--out", tmp / "r3"), str(f)))
    meta = ok.parent / "badmeta"
    shutil.copytree(ok, meta)
    m = json.loads((meta / "meta.json").read_text())
    m["episodes"][0]["labelled"] = "yes"
    (meta / "meta.json").write_text(json.dumps(m))
    cases.append(("train: wrong JSON type in meta.json", _cmd("clam-train", "--config", SMOKE, "--unlabelled", ok, "--labelled",
                                                               meta, "--out", tmp / "r4"), str(meta / "meta.json")))

    run = tmp / "run"
    run.mkdir()
    import torch

    torch.save({"format": "clamkit-policy", "version": 1, "arch": {"kind": "nonsense"}, "state_dict": {}, "meta": {}}, run / "policy.pt")
    cases.append(("export: malformed policy.pt", _cmd("clam-export", run, "--out", tmp / "bundle"), str(run / "policy.pt")))

    b1 = rel.write_bundle(tmp / "b1")
    rel.onnx_graph(b1 / "policy.onnx", out_dim=3)
    from clamkit.bundle import sha256_file

    m = json.loads((b1 / "clam.json").read_text())
    m["onnx_sha256"] = sha256_file(b1 / "policy.onnx")
    (b1 / "clam.json").write_text(json.dumps(m))
    cases.append(("run: graph disagrees with clam.json", _cmd("clam-run", b1, "--robot", "fake", "--robot-opt", "semantics=test:delta"),
                  str(b1 / "policy.onnx")))
    b2 = rel.write_bundle(tmp / "b2")
    rel.onnx_graph(b2 / "policy.onnx", out_dim=3)  # sha256 no longer matches
    cases.append(("run: policy.onnx replaced", _cmd("clam-run", b2, "--robot", "fake"), str(b2 / "policy.onnx")))
    b3 = rel.write_bundle(tmp / "b3")
    m = json.loads((b3 / "clam.json").read_text())
    m["valid"] = "false"
    (b3 / "clam.json").write_text(json.dumps(m))
    cases.append(("eval: valid is a string", _cmd("clam-eval", b3, "--env", "fake", "--episodes", "1"), str(b3 / "clam.json")))
    b4 = rel.write_bundle(tmp / "b4")
    (b4 / "clam.json").write_text((b4 / "clam.json").read_text()[:40])
    cases.append(("eval: truncated clam.json", _cmd("clam-eval", b4, "--env", "fake", "--episodes", "1"), str(b4 / "clam.json")))
    return cases


def test_each_cli_answers_bad_input_with_one_line(tmp_path, rel):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    cases = _bad_inputs(tmp_path, rel)
    try:
        import mujoco  # noqa: F401
    except ImportError:
        cases = [c for c in cases if "widowx-sim" not in c[1]]
    procs = [(name, want, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path))
             for name, cmd, want in cases]
    failures = []
    for name, want, p in procs:
        out, err = p.communicate(timeout=180)
        lines = err.strip().splitlines()
        if p.returncode != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or want not in lines[0] or "Traceback" in err:
            failures.append(f"{name}: exit {p.returncode}, stderr:\n{err}")
    assert not failures, "\n\n".join(failures)


def test_debug_shows_the_traceback(tmp_path, rel):
    root = rel.write_dataset(tmp_path / "d")
    (root / "meta.json").write_text("{")
    p = subprocess.run(_cmd("clam-record", "info", root, "--debug"), capture_output=True, text=True, env=ENV)
    assert p.returncode == 1 and "Traceback" in p.stderr and "DatasetError" in p.stderr
