"""clamkit.fileio: the one crash-safe write every stage uses (meta.json, clam.json, config.yaml, policy.pt,
checkpoint.pt, TensorRT engines)."""

import os

import pytest

from clamkit import fileio
from clamkit.errors import BundleError, DatasetError


def test_write_replaces_the_file_with_one_fsync_and_the_umask_permissions(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    target = tmp_path / "meta.json"
    target.write_text("old")
    old_umask = os.umask(0o027)
    try:
        fileio.write_json_atomic(target, {"a": [1, 2]})
    finally:
        os.umask(old_umask)
    assert fileio.read_json(target) == {"a": [1, 2]}
    assert len(synced) == 1
    assert target.stat().st_mode & 0o777 == 0o640  # 0o666 minus the umask, as open() would give
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # no temp file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "policy.pt"
    target.write_bytes(b"previous")

    def half_then_fail(f):
        f.write(b"half a file")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        fileio.write_atomic(target, half_then_fail)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["policy.pt"]


def test_bytes_and_text(tmp_path):
    fileio.write_bytes_atomic(tmp_path / "e.engine", bytearray(b"\x00\x01"))
    fileio.write_text_atomic(tmp_path / "c.yaml", "algo: clam\n")
    assert (tmp_path / "e.engine").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.yaml").read_text() == "algo: clam\n"


@pytest.mark.parametrize("content, reason", [(b"{", "not valid JSON"), (b"[" * 100_000, r"not valid JSON \(nested too deeply\)"),
                                             (b'{"a": "\xff"}', "not valid JSON")])
def test_read_json_names_the_file_in_the_callers_error(tmp_path, content, reason):
    f = tmp_path / "clam.json"
    f.write_bytes(content)
    with pytest.raises(BundleError, match=f"clam.json: {reason}"):
        fileio.read_json(f, BundleError)
    with pytest.raises(DatasetError, match="cannot be read"):
        fileio.read_json(tmp_path / "missing.json")
