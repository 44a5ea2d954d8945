"""policy.pt and checkpoint.pt carry a content hash, checked on load: a byte flipped inside a tensor's data
(torch.load reads it without complaint) is a one-line error naming the file, not a silently different
policy or training state (issue 16)."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

SMOKE = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml")


def flip_a_tensor_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor's data inside torch.save's zip (not its structure)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # the entry's data (stored, not compressed)
    raw[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def trained(linear, tmp_path_factory):
    from clamkit.trainer.cli import main

    expert, play = linear
    out = tmp_path_factory.mktemp("hash") / "run"
    args = ["--config", SMOKE, "--unlabelled", expert, "--labelled", play, "--out", str(out), "--set", "run.progress=false",
            "--set", "lam.steps=20", "--set", "idm.steps=10", "--set", "policy.steps=20", "--set", "run.ckpt_every=10"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return out, args


def test_flipped_byte_in_policy_pt_is_a_one_line_error(trained, tmp_path):
    from clamkit.errors import UserError
    from clamkit.pipeline import export_main
    from clamkit.trainer.deploy import load_policy

    run = tmp_path / "run"
    run.mkdir()
    (run / "policy.pt").write_bytes((trained[0] / "policy.pt").read_bytes())
    load_policy(run)  # intact: loads
    flip_a_tensor_byte(run / "policy.pt")
    torch.load(run / "policy.pt", weights_only=True)  # torch itself does not notice
    with pytest.raises(UserError, match="content hash mismatch"):
        load_policy(run)
    r = CliRunner().invoke(export_main, [str(run), "--out", str(tmp_path / "bundle")])
    assert r.exit_code == 2 and "content hash mismatch" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "policy.pt" in r.stderr and not (tmp_path / "bundle").exists()


def test_flipped_byte_in_checkpoint_pt_stops_resume_with_one_line(trained):
    from clamkit.trainer.cli import main

    out, args = trained
    ckpt = out / "checkpoint.pt"
    torch.load(ckpt, weights_only=True)
    flip_a_tensor_byte(ckpt)
    torch.load(ckpt, weights_only=True)  # torch itself does not notice
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code == 2, r.output
    assert "content hash mismatch" in r.stderr and "checkpoint.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
