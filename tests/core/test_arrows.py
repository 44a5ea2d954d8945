"""The never-arrows of docs/design.md §1, checked statically over every import in every module
(function-level imports, importlib/require calls and module names in strings included; see tests/arrows.py),
and the checker itself, on planted violations."""

import shutil
import textwrap

import pytest

import arrows


def test_every_module_keeps_the_arrows():
    imports = arrows.scan()
    files = arrows.module_files()
    assert len(files) > 70 and {arrows.node(m) for m in files} == set(arrows.NODES.values()) | {"core"}  # the whole tree
    assert arrows.violations(imports) == []


def test_the_packages_form_the_documented_layers():
    """The graph itself, so a new arrow is a decision someone makes (and writes into docs/design.md)."""
    g = arrows.package_graph(arrows.scan())
    stages = set(arrows.NODES.values()) | {"core"}
    assert {k: sorted(v & (stages | {"torch"})) for k, v in g.items()} == {
        "core": [],
        "robot": ["core"],
        "record": ["core", "robot"],
        "runtime": ["core", "robot"],
        "trainer": ["core", "torch"],
        "export": ["core", "runtime", "torch"],  # runtime: the one TensorRT runner and engine-name rule (runtime/trt.py)
        "view": ["core", "torch", "trainer"],  # torch and trainer inside the function that reads a RUN
        "pipeline": ["core", "export", "runtime", "trainer"],
    }


# ----------------------------------------------------------------------------- the checker catches what it should


def _found(source: str, module: str) -> list[str]:
    return arrows.violations(arrows.imports_of(textwrap.dedent(source), module))


@pytest.mark.parametrize("module, source, expect", [
    ("clamkit.trainer.train", "from clamkit.export.exporter import export_run\n", "trainer never imports export"),
    ("clamkit.trainer.train", "def f():\n    from clamkit.runtime import evaluate\n", "trainer never imports runtime"),
    ("clamkit.export.exporter", "import importlib\ndef f():\n    return importlib.import_module('clamkit.trainer.deploy')\n",
     "export never imports trainer"),
    ("clamkit.export.exporter", "from clamkit.errors import require\ndef f():\n    return require('clamkit.trainer.deploy', extra='train')\n",
     "export never imports trainer"),
    ("clamkit.export.exporter", "LOADER = 'clamkit.trainer.deploy'\n", "export never imports trainer"),
    ("clamkit.runtime.loop", "def f():\n    torch = __import__('torch')\n", "runtime never imports torch"),
    ("clamkit.robot.widowx_sim", "class A:\n    def f(self):\n        import torch.nn\n", "robot never imports torch"),
    ("clamkit.dataset", "from clamkit.robot.base import Robot\n", "core never imports robot"),
    ("clamkit.robot.factory", "def f():\n    from clamkit.record.policy import Policy\n", "robot never imports record"),
    ("clamkit.runtime.cli", "def f():\n    import clamkit.pipeline\n", "composition layer"),
    ("clamkit.view.scene", "from clamkit.trainer.deploy import load_policy\n", "view imports trainer only inside a function"),
    ("clamkit.robot.realsense", "import pyrealsense2 as rs\n", "optional SDK pyrealsense2"),
    ("clamkit.record.cli", "from ..trainer import deploy\n", "record never imports trainer"),
])
def test_planted_violation_in_a_source_is_found(module, source, expect):
    found = _found(source, module)
    assert any(expect in v for v in found), found


@pytest.mark.parametrize("module, source", [
    ("clamkit.view.scene", "def f():\n    import torch\n    from clamkit.trainer.deploy import load_policy\n"),
    ("clamkit.robot.realsense", "def f():\n    import pyrealsense2 as rs\n"),
    ("clamkit.export.exporter", '"""Reads policy.pt with clamkit.trainer.deploy, handed in by the caller."""\n'),
    ("clamkit.pipeline", "from clamkit.trainer import cli\nfrom clamkit.export import cli as e\n"),
])
def test_what_the_rules_allow_is_not_reported(module, source):
    assert _found(source, module) == []


@pytest.fixture
def tree(tmp_path):
    """A copy of every package's sources, to plant violations in."""
    for d in arrows.PACKAGE_DIRS:
        shutil.copytree(arrows.ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__", "*.xml", "assets"))
    assert arrows.violations(arrows.scan(tmp_path)) == []
    return tmp_path


def test_planted_function_level_import_in_a_copy_fails(tree):
    f = tree / "trainer" / "train.py"
    f.write_text(f.read_text() + "\n\ndef _late():\n    from clamkit.export.exporter import export_run\n    return export_run\n")
    found = arrows.violations(arrows.scan(tree))
    assert any("trainer never imports export" in v and "clamkit.trainer.train" in v and "in a function" in v for v in found), found


def test_planted_cycle_in_a_copy_fails(tree):
    f = tree / "robot" / "base.py"
    f.write_text(f.read_text() + "\n\ndef _recorder():\n    import importlib\n    return importlib.import_module('clamkit.record.episodes')\n")
    found = arrows.violations(arrows.scan(tree))
    assert "import cycle between packages record <-> robot" in found, found


def test_torch_reached_through_another_package_fails(tree):
    f = tree / "clamkit" / "specs.py"  # core: robot, record and runtime all import it
    f.write_text(f.read_text() + "\n\ndef _t():\n    import torch\n    return torch\n")
    found = arrows.violations(arrows.scan(tree))
    assert "core never imports torch" in " ".join(found)
    assert any(v.startswith("runtime reaches torch through core") for v in found), found
