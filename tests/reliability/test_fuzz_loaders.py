"""Fuzzed bad inputs against every loader: the dataset reader (meta.json + episode arrays + verify_episode),
the bundle loader (clam.json + policy.onnx through make_backend) and the config loader (YAML + --set).

Every case ends in one of:
  rejected   a UserError (DatasetError, BundleError, ConfigError) whose one-line message names the file
             (or the --set flag) at fault;
  repaired   a documented repair (leftovers of a killed recording are ignored and removed, optional
             meta.json fields default), checked for its result;
  harmless   a bit flip that left the data intact (e.g. in .npy header padding): it loads to exactly the
             original arrays.
Anything else — an exception from deep inside numpy/onnxruntime/yaml, or a bad input that loads
silently — fails the test, listing every such case. Cases are generated deterministically (a seeded
mutation loop over real files plus tables of wrong JSON/YAML types); each test prints how many it tried
(pytest -s) and the session prints the total ("reliability: tried N bad inputs").
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from clamkit.dataset import Dataset, DatasetWriter, array_crc32
from clamkit.errors import UserError

NAN, INF = float("nan"), float("inf")
DELETE = object()  # a table value meaning "remove this key"
SEED = 1234


@dataclass
class Repair:
    """The loader must accept the input; check(loaded) asserts the documented result."""

    check: Callable = lambda loaded: None


@dataclass
class Harmless:
    """A random corruption that may leave the content intact: rejected, or loads to exactly the original."""

    path: Path  # the file the error must name when it is rejected


@dataclass
class Case:
    name: str
    mutate: Callable[[Path], "Path | str | Repair | Harmless"]  # -> what the error must name


def run_cases(cases: list[Case], source: Path, tmp: Path, load: Callable, same: Callable | None, tally, family: str,
              minimum: int) -> None:
    """Apply each case to a fresh copy of `source`, load it, classify the outcome; fail listing every bad outcome."""
    failures, outcomes = [], {"rejected": 0, "repaired": 0, "harmless": 0}
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names must be distinct"
    assert len(cases) >= minimum, f"only {len(cases)} {family} cases generated (want >= {minimum}; 200+ over all loaders)"
    reference = load(source)
    for n, case in enumerate(cases):
        d = tmp / f"case{n:04d}"
        shutil.copytree(source, d) if source.is_dir() else shutil.copyfile(source, d)
        expect = case.mutate(d)
        try:
            loaded = load(d)
        except UserError as e:
            msg = str(e)
            where = str(expect.path if isinstance(expect, Harmless) else expect)
            if isinstance(expect, Repair):
                failures.append(f"{case.name}: a documented repair was rejected: {msg}")
            elif "\n" in msg or where not in msg:
                failures.append(f"{case.name}: message does not name {where} on one line: {msg!r}")
            else:
                outcomes["rejected"] += 1
            continue
        except Exception as e:  # noqa: BLE001 - exactly what this test hunts
            failures.append(f"{case.name}: crashed with {type(e).__name__}: {' '.join(str(e).split())[:200]}")
            continue
        if isinstance(expect, Repair):
            try:
                expect.check(loaded)
                outcomes["repaired"] += 1
            except AssertionError as e:
                failures.append(f"{case.name}: repaired wrongly: {e}")
        elif isinstance(expect, Harmless) and same is not None and same(reference, loaded):
            outcomes["harmless"] += 1
        else:
            failures.append(f"{case.name}: accepted silently (should name {expect})")
    tried = len(cases)
    tally.update({f"{k} ({family})": v for k, v in outcomes.items() if v})
    print(f"\n{family}: tried {tried} bad inputs: {outcomes}")
    assert not failures, f"{len(failures)} of {tried} {family} cases failed:\n" + "\n".join(failures)


def _edit_json(file: Path, key_path: tuple, value) -> None:
    d = json.loads(file.read_text())
    node = d
    for k in key_path[:-1]:
        node = node[k]
    if value is DELETE:
        del node[key_path[-1]]
    else:
        node[key_path[-1]] = value
    file.write_text(json.dumps(d))  # NaN/Infinity are written as JSON's non-standard tokens, as Python reads them


def _file_cases(prefix: str, name: str, sample: bytes) -> list[tuple[str, bytes]]:
    """Whole-file replacements for a JSON/YAML file: truncations, garbage, wrong top level, deep nesting."""
    rng = random.Random(f"{SEED}{name}")
    out = [(f"{prefix} empty", b""), (f"{prefix} deep nesting", b"[" * 100_000), (f"{prefix} invalid utf-8", b'{"a": "\xff\xfe"}'),
           (f"{prefix} utf-8 BOM", b"\xef\xbb\xbf" + sample)]
    for i in range(3):
        out.append((f"{prefix} garbage {i}", bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))))
    return out


# ----------------------------------------------------------------------------- the dataset reader


def _dataset_load(root: Path) -> dict:
    """What a consumer of a dataset does: open it (headers), verify every episode's contents, index and summarise."""
    ds = Dataset(root)
    for i in range(len(ds)):
        ds.verify_episode(i)
    ds.window_index()
    ds.summary()
    return {(i, k): np.array(a) for i in range(len(ds)) for k, a in ds.episode(i).items()}


def _same_arrays(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def _meta_value_cases() -> list[tuple[tuple, object, str | None]]:
    """(key path in meta.json, bad value, file the error names: None = meta.json, else episode file 'E/key')."""
    t = []

    def add(path, values, where=None):
        t.extend((path, v, where) for v in values)

    add(("format",), ["clamkit-bundle", None, 1, DELETE])
    add(("version",), [2, 0, "1", 1.0, True, None, DELETE])
    add(("fps",), ["10", True, None, [], {}, -1, 0, NAN, INF, 10**400, DELETE])
    add(("robot",), [1, None, [], DELETE])
    add(("task",), [1, [], {}])
    add(("info",), [[], "x", 1])
    add(("observation",), [[], "x", {}, None, DELETE])
    add(("observation", "state"), [[], "x", None, {}])
    add(("observation", "state", "shape"), ["3", 3, None, [0], [-1], [1.5], [True], ["3"], [3, None], [10**6, 10**6], DELETE])
    add(("observation", "state", "shape"), [[], [4], [3, 1]])  # valid specs that the recorded stats contradict
    add(("observation", "state", "dtype"), ["object", "U8", "nonsense", 3, None, "complex64", "datetime64[s]", DELETE])
    add(("observation", "state", "dtype"), ["float64", "int32", "float16"], "0/state")
    add(("observation", "image", "shape", 0), [0, -1, 1.5, "4", True, None])
    add(("observation", "image", "shape", 0), [5, 3], "0/image")
    add(("observation", "../state"), [{"shape": [3], "dtype": "float32"}])
    add(("observation", "action"), [{"shape": [2], "dtype": "float32"}])
    add(("observation", ""), [{"shape": [1], "dtype": "float32"}])
    add(("observation", "st/ate"), [{"shape": [1], "dtype": "float32"}])
    add(("observation", "depth"), [{"shape": [4, 4], "dtype": "uint16"}], "0/depth")  # a key with no files
    add(("action",), ["x", [], 5, {}, None, DELETE])  # None/missing: labelled episodes without an action spec
    add(("action", "dim"), [0, -1, 1.5, "2", True, None, 3, DELETE])
    add(("action", "low"), ["x", 1, None, [-1], [-1, -1, -1], ["a", "b"], [NAN, -1], [2, 2], [True, -1], DELETE])
    add(("action", "high"), [[NAN, 1], "x", None, [1]])
    add(("action", "semantics"), [3, None, [], {}])
    add(("action", "dim"), [1], None)
    add(("episodes",), [{}, "x", None, 5, DELETE, [[]], ["x"], [None]])
    add(("episodes", 0), ["x", None, [], 5, {}])
    add(("episodes", 0, "index"), [1, -1, 0.0, "0", True, None, DELETE])
    add(("episodes", 1, "index"), [0, 2, True, 1.0])
    add(("episodes", 0, "length"), [1, 0, -1, 1.5, "6", True, None, DELETE])
    add(("episodes", 0, "length"), [5, 7, 100, 10**12], "0/state")
    add(("episodes", 0, "labelled"), ["yes", 1, 0, None, DELETE, "true"])
    add(("episodes", 2, "labelled"), [True], "2/action")  # says labelled; there is no action file
    add(("episodes", 0, "crc32"), ["x", [], 5, {"state": "x"}, {"state": -1}, {"state": 1.5}, {"state": None}])
    add(("episodes", 0, "crc32"), [{"state": 12345}, {"state": 0, "image": 0}], "0/state")
    add(("episodes", 1, "crc32", "action"), [7], "1/action")
    add(("episodes", 2, "crc32", "image"), [2**32 - 1], "2/image")
    add(("stats",), [[], "x", 5, {"nosuch": {"count": 0}}])
    add(("stats", "state"), [[], "x", 5])
    add(("stats", "state", "count"), ["x", -1, 1.5, True, None])
    add(("stats", "state", "mean"), [None, "x", [1, 2], [NAN, 0, 0], [INF, 0, 0], ["a", 0, 0], DELETE])
    add(("stats", "action", "min"), [[1], None, [True, 0]])
    add(("stats", "image", "sumsq"), [[1, 2], [1, 2, 3, 4]])
    return t


def _npy_header_len(raw: bytes) -> int:
    major = raw[6]
    return 10 + int.from_bytes(raw[8:10], "little") if major == 1 else 12 + int.from_bytes(raw[8:12], "little")


def _replace_npy(f: Path, make: Callable[[np.ndarray], object]) -> None:
    a = np.load(f)
    f.unlink()
    obj = make(a)
    if isinstance(obj, bytes):
        f.write_bytes(obj)
    elif isinstance(obj, str):  # "dir"
        f.mkdir()
    elif obj is not None:
        with open(f, "wb") as fh:
            np.save(fh, obj, allow_pickle=True)


def _poke(root: Path, file: Path, step: int, value: float, crc: str) -> None:
    """Write `value` at `step` of a float episode file; crc: 'update' the checksum (a tool that wrote NaN on
    purpose), 'drop' it (a dataset from before checksums), or 'keep' it."""
    a = np.load(file)
    a.reshape(len(a), -1)[step, 0] = value
    np.save(file, a)
    meta = root / "meta.json"
    m = json.loads(meta.read_text())
    ep = m["episodes"][int(file.parent.name)]
    if crc == "update":
        ep["crc32"][file.stem] = array_crc32(a)
    elif crc == "drop":
        ep.pop("crc32")
    meta.write_text(json.dumps(m))


def dataset_cases(src: Path) -> list[Case]:
    cases: list[Case] = []
    ep = lambda d, where: d / "episodes" / f"{int(where.split('/')[0]):06d}" / f"{where.split('/')[1]}.npy"  # noqa: E731

    # meta.json: wrong types and values, one field at a time
    for path, value, where in _meta_value_cases():
        def mutate(d, path=path, value=value, where=where):
            _edit_json(d / "meta.json", path, value)
            return d / "meta.json" if where is None else ep(d, where)
        cases.append(Case(f"meta{list(path)}={'<deleted>' if value is DELETE else repr(value)[:40]}", mutate))

    # meta.json: the whole file
    raw = (src / "meta.json").read_bytes()
    whole = _file_cases("meta.json", "meta", raw) + [(f"meta.json top-level {v!r}", json.dumps(v).encode()) for v in ([], "x", 5, None, True, {})]
    rng = random.Random(SEED)
    for i, cut in enumerate(sorted(rng.sample(range(1, len(raw) - 1), 10))):
        whole.append((f"meta.json truncated to {cut} of {len(raw)} bytes", raw[:cut]))
    for name, data in whole:
        cases.append(Case(name, lambda d, data=data: ((d / "meta.json").write_bytes(data), d / "meta.json")[1]))
    cases.append(Case("meta.json is a directory", lambda d: ((d / "meta.json").unlink(), (d / "meta.json").mkdir(), d / "meta.json")[2]))
    cases.append(Case("meta.json missing", lambda d: ((d / "meta.json").unlink(), d / "meta.json")[1]))
    cases.append(Case("dataset dir is a file", lambda d: (shutil.rmtree(d), d.write_text("x"), d)[2]))

    # episode arrays: truncated, bit-flipped, wrong dtype/shape/kind, NaN/Inf, missing
    for where in ("0/state", "0/image", "0/action", "2/state", "1/image"):
        f0 = ep(src, where)
        size, hdr = f0.stat().st_size, _npy_header_len(f0.read_bytes())
        for cut in sorted({0, 5, 9, 60, hdr, hdr + 1, size // 2, size - 1}):
            cases.append(Case(f"{where} truncated to {cut} of {size} bytes",
                              lambda d, where=where, cut=cut: (ep(d, where).write_bytes(ep(d, where).read_bytes()[:cut]), ep(d, where))[1]))
        rng = random.Random(f"{SEED}{where}")
        spots = [("header", rng.randrange(0, hdr)) for _ in range(4)] + [("data", rng.randrange(hdr, size)) for _ in range(4)]
        spots += [("anywhere", rng.randrange(0, size)) for _ in range(4)]
        for k, (region, pos) in enumerate(spots):
            bits = [(pos, rng.randrange(8))] + [(rng.randrange(size), rng.randrange(8)) for _ in range(k % 3)]

            def flip(d, where=where, bits=bits):
                f = ep(d, where)
                b = bytearray(f.read_bytes())
                for p, bit in bits:
                    b[p] ^= 1 << bit
                f.write_bytes(bytes(b))
                return Harmless(f)
            cases.append(Case(f"{where} {len(bits)} bit(s) flipped, first in the {region} at byte {pos}", flip))
        kind = "f" if where.endswith(("state", "action")) else "u"
        replacements = {
            "float64": lambda a: a.astype(np.float64), "int32": lambda a: a.astype(np.int32),
            "float16": lambda a: a.astype(np.float16), "one row more": lambda a: np.concatenate([a, a[-1:]]),
            "one row less": lambda a: a[:-1], "flattened": lambda a: a.reshape(-1), "extra axis": lambda a: a[..., None],
            "transposed": lambda a: np.ascontiguousarray(a.T), "object array (pickle)": lambda a: np.array([a, None], dtype=object),
            "random bytes": lambda a: bytes(random.Random(a.size).randrange(256) for _ in range(a.nbytes + 128)),
            "npz archive": lambda a: _npz_bytes(a), "a directory": lambda a: "dir", "deleted": lambda a: None,
        }
        if kind == "u":
            replacements["float32"] = lambda a: a.astype(np.float32)
        for rname, make in replacements.items():
            cases.append(Case(f"{where} replaced by {rname}", lambda d, where=where, make=make: (_replace_npy(ep(d, where), make), ep(d, where))[1]))
        if kind == "f":
            for value, vname in ((NAN, "NaN"), (INF, "Inf"), (-INF, "-Inf")):
                for crc in ("update", "drop", "keep"):
                    cases.append(Case(f"{where} {vname} at step 2, checksum {crc}",
                                      lambda d, where=where, value=value, crc=crc: (_poke(d, ep(d, where), 2, value, crc), ep(d, where))[1]))

    # documented repairs: leftovers of a killed recording, optional fields
    def tmp_left(d):
        (d / "episodes" / ".tmp-000003").mkdir()
        (d / "episodes" / ".tmp-000003" / "state.npy").write_bytes(b"half")
        return Repair(lambda data: _reopen_cleans(d, ".tmp-000003"))

    def orphan(d):  # renamed into place, killed before meta.json listed it
        shutil.copytree(d / "episodes" / "000002", d / "episodes" / "000003")
        return Repair(lambda data: _reopen_cleans(d, "000003"))

    def drop_optional(d, key):
        _edit_json(d / "meta.json", (key,), DELETE)
        return Repair(lambda data: None)
    cases += [Case("leftover .tmp episode directory", tmp_left), Case("episode directory not in meta.json", orphan)]
    cases += [Case(f"meta.json without optional '{k}'", lambda d, k=k: drop_optional(d, k)) for k in ("task", "info", "stats")]
    cases.append(Case("meta.json without action semantics", lambda d: (_edit_json(d / "meta.json", ("action", "semantics"), DELETE),
                                                                        Repair(lambda data: None))[1]))
    return cases


def _npz_bytes(a: np.ndarray) -> bytes:
    import io

    b = io.BytesIO()
    np.savez(b, a=a)
    return b.getvalue()


def _reopen_cleans(root: Path, leftover: str) -> None:
    """The reader ignored the leftover; a writer reopening the dataset removes it and appends after it."""
    ds = Dataset(root)
    assert len(ds) == 3
    w = DatasetWriter(root, observation=ds.observation, action=ds.action, fps=ds.fps, robot="fake")
    assert not (root / "episodes" / leftover).exists(), f"{leftover} was not removed"
    rng = np.random.default_rng(1)
    w.add_episode({"state": rng.normal(size=(3, 3)), "image": rng.integers(0, 256, (3, 4, 4, 3))}, np.zeros((2, 2)))
    assert len(Dataset(root)) == 4 and Dataset(root).episode(3)["state"].shape == (3, 3)


def test_fuzzed_datasets(tmp_path, rel):
    src = rel.write_dataset(tmp_path / "src")
    run_cases(dataset_cases(src), src, tmp_path, _dataset_load, _same_arrays, rel.tally, "dataset", minimum=300)


def test_opening_checks_headers_verify_checks_contents(tmp_path, rel):
    """The two tiers: opening a dataset reads headers only (cheap at any size, so a changed value inside an
    array is not seen); verify_episode reads the contents and names the file."""
    src = rel.write_dataset(tmp_path / "src")
    f = src / "episodes" / "000001" / "state.npy"
    a = np.load(f)
    a[2, 1] = np.nan
    np.save(f, a)
    ds = Dataset(src)
    assert len(ds) == 3
    ds.verify_episode(0)
    with pytest.raises(UserError, match="crc32") as e:  # the checksum recorded at write time catches it first
        ds.verify_episode(1)
    assert str(f) in str(e.value)


# ----------------------------------------------------------------------------- the bundle loader


def _bundle_load(root: Path):
    from clamkit.runtime.backends import make_backend

    with make_backend(root, "ort") as be:
        a = be.infer({"state": np.ones(4, np.float32)})
        assert a.shape == (2,) and np.isfinite(a).all()
        return a


def _bundle_meta_cases() -> list[tuple[tuple, object]]:
    t = []

    def add(path, values):
        t.extend((path, v) for v in values)

    add(("format",), ["clamkit-dataset", None, DELETE])
    add(("version",), [2, "1", 1.0, True, None, DELETE])
    add(("valid",), [False, "false", "true", 1, 0, None, DELETE])
    add(("fps",), ["10", True, None, [], -5, 0, NAN, INF, DELETE])
    add(("la_dim",), [-1, 1.5, "8", True, None, INF, DELETE])
    add(("inputs",), ["state", [1], ["state", "state"], ["image"], [], None, {"state": 1}, DELETE])
    add(("onnx_sha256",), [123, None, "abc", "0" * 64, "Z" * 64, DELETE])
    add(("algo",), [3, [], {}])
    add(("output",), ["y", None, 1])
    add(("onnx",), ["other.onnx", None])
    add(("parity",), ["x", [], 5])
    add(("provenance",), ["x", 5])
    add(("camera",), [5, "x", []])
    add(("extra",), [[1], "x"])
    add(("observation",), [[], "x", {}, None, DELETE])
    add(("observation", "state"), [[], None, {}])
    add(("observation", "state", "shape"), ["4", None, [0], [-1], [1.5], [True], [10**9, 10**9], [], [6], [4, 1], DELETE])
    add(("observation", "state", "dtype"), ["object", "nonsense", 3, "uint8", "float64", DELETE])
    add(("action",), ["x", [], {}, None, DELETE])
    add(("action", "dim"), [0, -1, 1.5, "2", True, 3, DELETE])
    add(("action", "low"), [[NAN, -1], ["a", -1], [2, 2], [-1], None])
    add(("action", "high"), [[NAN, 1], None, [1, 1, 1]])
    add(("action", "semantics"), [3, None])
    return t


def _rehash(d: Path) -> None:
    from clamkit.bundle import sha256_file

    _edit_json(d / "clam.json", ("onnx_sha256",), sha256_file(d / "policy.onnx"))


def bundle_cases(src: Path, onnx_graph) -> list[Case]:
    cases: list[Case] = []
    for path, value in _bundle_meta_cases():
        def mutate(d, path=path, value=value):
            _edit_json(d / "clam.json", path, value)
            # a well-formed spec or hash that the graph contradicts: the error names policy.onnx (and clam.json)
            graph = (path == ("onnx_sha256",) and value == "0" * 64) or (path[-1] == "shape" and value in ([], [6], [4, 1])) \
                or (path[-1] == "dtype" and value in ("uint8", "float64"))
            return d / ("policy.onnx" if graph else "clam.json")
        cases.append(Case(f"clam.json{list(path)}={'<deleted>' if value is DELETE else repr(value)[:40]}", mutate))
    raw = (src / "clam.json").read_bytes()
    whole = _file_cases("clam.json", "clam", raw) + [(f"clam.json top-level {v!r}", json.dumps(v).encode()) for v in ([], "x", 5, None, {})]
    rng = random.Random(SEED + 1)
    for cut in sorted(rng.sample(range(1, len(raw) - 1), 8)):
        whole.append((f"clam.json truncated to {cut} of {len(raw)} bytes", raw[:cut]))
    for name, data in whole:
        cases.append(Case(name, lambda d, data=data: ((d / "clam.json").write_bytes(data), d / "clam.json")[1]))
    cases.append(Case("clam.json missing", lambda d: ((d / "clam.json").unlink(), d / "clam.json")[1]))

    # policy.onnx that does not match the sha256 recorded at export
    onnx_raw = (src / "policy.onnx").read_bytes()
    size = len(onnx_raw)
    for cut in (0, 1, 16, size // 2, size - 1):
        cases.append(Case(f"policy.onnx truncated to {cut} of {size} bytes",
                          lambda d, cut=cut: ((d / "policy.onnx").write_bytes(onnx_raw[:cut]), d / "policy.onnx")[1]))
    rng = random.Random(SEED + 2)
    for k in range(10):
        bits = [(rng.randrange(size), rng.randrange(8)) for _ in range(1 + k % 3)]

        def flip(d, bits=bits):
            b = bytearray(onnx_raw)
            for p, bit in bits:
                b[p] ^= 1 << bit
            (d / "policy.onnx").write_bytes(bytes(b))
            return d / "policy.onnx"
        cases.append(Case(f"policy.onnx {len(bits)} bit(s) flipped at {bits[0][0]}", flip))
    cases.append(Case("policy.onnx missing", lambda d: ((d / "policy.onnx").unlink(), d / "policy.onnx")[1]))
    cases.append(Case("policy.onnx is a directory", lambda d: ((d / "policy.onnx").unlink(), (d / "policy.onnx").mkdir(), d / "policy.onnx")[2]))
    cases.append(Case("policy.onnx swapped for another graph",
                      lambda d: (onnx_graph(d / "policy.onnx", out_dim=3), d / "policy.onnx")[1]))
    # ... and the same with clam.json's hash edited to match (a hand-edited bundle): the graph must still agree
    for gname, kw in {"input dim 6": dict(in_dim=6), "action dim 3": dict(out_dim=3), "input named obs": dict(in_name="obs"),
                      "uint8 input": dict(in_dtype="uint8"), "output named y": dict(out_name="y")}.items():
        cases.append(Case(f"policy.onnx re-hashed, graph with {gname}",
                          lambda d, kw=kw: (onnx_graph(d / "policy.onnx", **kw), _rehash(d), d / "policy.onnx")[2]))
    for label, data in (("garbage", bytes(range(256)) * 4), ("empty", b""), ("truncated", onnx_raw[: size // 2])):
        cases.append(Case(f"policy.onnx re-hashed, {label}",
                          lambda d, data=data: ((d / "policy.onnx").write_bytes(data), _rehash(d), d / "policy.onnx")[2]))
    cases.append(Case("clam.json without optional camera/extra/parity/provenance",
                      lambda d: ([_edit_json(d / "clam.json", (k,), DELETE) for k in ("camera", "extra", "parity", "provenance")],
                                 Repair(lambda a: None))[1]))
    return cases


def test_fuzzed_bundles(tmp_path, rel):
    pytest.importorskip("onnxruntime")
    src = rel.write_bundle(tmp_path / "src")
    run_cases(bundle_cases(src, rel.onnx_graph), src, tmp_path, _bundle_load, None, rel.tally, "bundle", minimum=120)


# ----------------------------------------------------------------------------- the config loader


def _bad_values(tp, key: str) -> list:
    """Values of the wrong type (or out of range) for a config field of type `tp`."""
    origin = typing.get_origin(tp)
    optional = origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in typing.get_args(tp)
    if optional:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    none = [] if optional else [None]
    if origin is list:
        return none + ["x", 5, ["a"], [1.5], [0], [-1], [[1]], {}]
    if tp is bool:
        return none + [1, "true", [], 0.5]
    if tp is int:
        return none + [1.5, "x", True, [], {}, "1", -1, INF]
    if tp is float:
        return none + ["x", True, [], {}, -1.0, NAN, INF, -INF, "1e999"]
    if tp is str:
        return none + [1, True, [], {}, "no-such-choice"]
    raise AssertionError(f"no bad values for {key}: {tp}")


def config_cases() -> list[tuple[str, bytes | None, list[str], str]]:
    """(name, YAML file bytes or None, --set overrides, what the error must name: 'file' or the --set text)."""
    from clamkit.trainer.config import TrainConfig

    out = []
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            for v in (5, "x", [], [1], True):
                out.append((f"section {f.name}={v!r}", yaml.safe_dump({f.name: v}).encode(), [], "file"))
            sub = typing.get_type_hints(tp)
            for g in dataclasses.fields(tp):
                key = f"{f.name}.{g.name}"
                for v in _bad_values(sub[g.name], key):
                    if key == "run.device" and v == "no-such-choice":
                        v = "tpu"
                    out.append((f"{key}={v!r}", yaml.safe_dump({f.name: {g.name: v}}).encode(), [], "file"))
                for v in _bad_values(sub[g.name], key)[1::3]:  # the same through --set, every third value
                    text = f"{key}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                    out.append((f"--set {text}", None, [text], "--set"))
        else:
            for v in _bad_values(tp, f.name):
                out.append((f"{f.name}={v!r}", yaml.safe_dump({f.name: v}).encode(), [], "file"))
    sample = (Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml").read_bytes()
    for name, data in _file_cases("config", "config", sample):
        out.append((name, data, [], "defaults" if name in ("config empty", "config utf-8 BOM") else "file"))
    for name, text in {"unclosed bracket": "model:\n  hidden: [64, 64\n", "tab indentation": "lam:\n\tsteps: 5\n",
                       "top-level list": "- lam\n- steps\n", "top-level scalar": "5\n", "python tag": "lam: !!python/object:os.system ls\n",
                       "unknown section": "lamm:\n  steps: 5\n", "unknown key": "lam:\n  stepz: 5\n",
                       "unknown nested key": "run:\n  seed: 1\n  sede: 2\n", "mapping for a scalar": "algo: {clam: 1}\n",
                       "colon in a key": "lam:\n  steps: 5: 6\n"}.items():
        out.append((name, text.encode(), [], "file"))
    for text in ("lam.steps", "=5", "lam.steps=" + "[" * 10000, "lam=5", "lam.steps.x=1", "nope.x=1", "lam.steps=abc",
                 "model.hidden=[a]", "run.seed=-1", "run.seed=99999999999", "optim.lr=.nan", "optim.lr=1e999", " =1",
                 "lam..steps=1", "lam.steps=1=2"):
        out.append((f"--set {text[:30]!r}", None, [text], "--set"))
    return out


def test_fuzzed_configs(tmp_path, rel):
    from clamkit.config import load_config
    from clamkit.trainer.config import TrainConfig

    cases = []
    for i, (name, data, overrides, where) in enumerate(config_cases()):
        def mutate(p, data=data, overrides=overrides, where=where, i=i):
            if data is not None:
                p.write_bytes(data)
            p.with_suffix(".set").write_text(json.dumps(overrides))
            if where == "defaults":  # documented: an empty file is the defaults; YAML allows a BOM
                return Repair(lambda loaded: None)
            return str(p) if where == "file" else "--set"
        cases.append(Case(name, mutate))
    cases.append(Case("config is a directory", lambda p: (p.unlink(), p.mkdir(), p.with_suffix(".set").write_text("[]"), str(p))[3]))
    cases.append(Case("config missing", lambda p: (p.unlink(), p.with_suffix(".set").write_text("[]"), str(p))[2]))

    def load(p: Path):
        overrides = json.loads(p.with_suffix(".set").read_text()) if p.with_suffix(".set").exists() else []
        return load_config(TrainConfig, p, overrides)

    src = tmp_path / "smoke.yaml"
    shutil.copyfile(Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml", src)
    run_cases(cases, src, tmp_path, load, None, rel.tally, "config", minimum=300)
