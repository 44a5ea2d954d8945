"""No function in runtime/, export/ or trainer/ is longer than 80 lines, and run_loop takes at most 6
parameters (issue 16: a 168-line run_loop with 16 parameters did five jobs). Checked with ast on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("runtime", "export", "trainer")
MAX_LINES = 80


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method longer than `limit` lines, decorators excluded."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append((node.name, node.lineno, n))
    return out


def test_the_checker_sees_a_long_method():
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    assert long_functions(f"class A:\n    def f(self):\n{body}\n") == [("f", 2, MAX_LINES + 1)]
    assert long_functions("def g():\n    return 1\n") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_longer_than_80_lines(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {ROOT / package}"
    bad = [f"{p.relative_to(ROOT)}:{line} {name} ({n} lines)" for p in files
           for name, line, n in long_functions(p.read_text())]
    assert not bad, "split these functions: " + "; ".join(bad)


def test_run_loop_takes_at_most_six_parameters():
    tree = ast.parse((ROOT / "runtime" / "loop.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_loop")
    a = fn.args
    count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
    assert count <= 6, f"run_loop takes {count} parameters; put options into LoopOptions"
