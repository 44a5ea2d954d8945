"""benchmarks/rehearsal.py's bookkeeping (the rehearsal itself runs for minutes per path and is not a test)."""

def test_a_retrained_bundle_under_the_same_folder_name_gets_its_own_entry_and_resume_folder(tmp_path, benchmark_module):
    # The bug: the key was folder name + task, so a bundle retrained on a new simulator resumed the old
    # bundle's cached runs and overwrote its entry.
    mod = benchmark_module("rehearsal")
    old, new = tmp_path / "v3" / "clam-s1", tmp_path / "v4" / "clam-s1"
    for d, weights in ((old, b"old"), (new, b"new")):
        d.mkdir(parents=True)
        (d / "policy.onnx").write_bytes(weights)
    k_old, k_new = mod.entry_key(old, "close-drawer", []), mod.entry_key(new, "close-drawer", [])
    assert k_old != k_new
    assert k_old.startswith("clam-s1-close-drawer-") and k_new.startswith("clam-s1-close-drawer-")
    assert mod.entry_key(new, "close-drawer", ["ros=ros1"]).startswith("clam-s1-close-drawer-ros=ros1-")
    assert mod.entry_key(new, "close-drawer", []) == k_new  # same bundle, same key: the run resumes
