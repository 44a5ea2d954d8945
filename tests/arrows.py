"""Static import graph of clamkit's packages: every import in every module, read with `ast`, never run.

What counts as an import of module M from file F:
- `import M`, `from M import x` (and relative forms), at module level or inside any function or class;
- a call `importlib.import_module("M")`, `__import__("M")`, `require("M", ...)` (clamkit.errors) or
  `find_spec("M")` with a literal first argument;
- any string constant that is exactly a clamkit module name ("clamkit.trainer.deploy"), since a name in
  a string is how a hidden import is usually spelled.
Each module maps to a package node by where it lives (pyproject's package-dir): core (clamkit/ and
clamkit/importers/), pipeline (clamkit/pipeline.py, the composition layer), trainer, export, runtime,
robot (robot/emulate/ included), record, view; a third-party top-level name maps to itself ("torch").
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Directory -> the module prefix it installs as (pyproject.toml [tool.setuptools.package-dir]).
PACKAGE_DIRS = {"clamkit": "clamkit", "trainer": "clamkit.trainer", "export": "clamkit.export",
                "runtime": "clamkit.runtime", "robot": "clamkit.robot", "record": "clamkit.record", "view": "clamkit.view"}
NODES = {"clamkit.pipeline": "pipeline", "clamkit.trainer": "trainer", "clamkit.export": "export",
         "clamkit.runtime": "runtime", "clamkit.robot": "robot", "clamkit.record": "record", "clamkit.view": "view"}
IMPORT_CALLS = {"import_module", "__import__", "require", "find_spec"}
MODULE_NAME = re.compile(r"clamkit(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class Import:
    source: str      # the importing module, e.g. clamkit.trainer.train
    target: str      # the imported module, e.g. clamkit.export.exporter or torch
    line: int
    toplevel: bool   # executed when the module is imported (not inside a function)
    how: str         # "import", "call", "string"

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target} ({self.how}{'' if self.toplevel else ', in a function'})"


def node(module: str) -> str:
    """The package node of a module name: core, pipeline, trainer, ... or a third-party top-level name."""
    for prefix, name in NODES.items():
        if module == prefix or module.startswith(prefix + "."):
            return name
    if module == "clamkit" or module.startswith("clamkit."):
        return "core"
    return module.split(".")[0]


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of every package: {module name: file}."""
    out = {}
    for d, prefix in PACKAGE_DIRS.items():
        for f in sorted((root / d).rglob("*.py")):
            rel = f.relative_to(root / d).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if d == "clamkit" and parts and parts[0] in {"trainer", "export", "runtime", "robot", "record", "view"}:
                continue  # not a real place; guards against a stray copy
            out[name] = f
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every import in one module's source (see the module docstring)."""
    tree = ast.parse(source)
    found: list[Import] = []

    def visit(n: ast.AST, toplevel: bool) -> None:
        if isinstance(n, ast.Import):
            found.extend(Import(module, a.name, n.lineno, toplevel, "import") for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            base = _resolve(module, is_package, n.level, n.module)
            found.append(Import(module, base, n.lineno, toplevel, "import"))
            # `from clamkit.trainer import deploy` imports the submodule too
            found.extend(Import(module, f"{base}.{a.name}", n.lineno, toplevel, "import") for a in n.names
                         if a.name != "*" and base.startswith("clamkit"))
        elif isinstance(n, ast.Call):
            f = n.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if fname in IMPORT_CALLS and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
                found.append(Import(module, n.args[0].value, n.lineno, toplevel, "call"))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and MODULE_NAME.fullmatch(n.value):
            found.append(Import(module, n.value, n.lineno, toplevel, "string"))
        inner = toplevel and not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(n):
            visit(child, inner)

    visit(tree, True)
    return found


def scan(root: Path = ROOT) -> list[Import]:
    """Every import in every module of every package under root."""
    out = []
    for name, f in module_files(root).items():
        out.extend(imports_of(f.read_text(), name, f.name == "__init__.py"))
    return out


def package_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Package node -> the package nodes (and third-party names) it imports, self-arrows left out."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        a, b = node(i.source), node(i.target)
        graph.setdefault(a, set())
        if a != b:
            graph[a].add(b)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more packages (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


# ----------------------------------------------------------------------------- the rules (docs/design.md §1)

LIGHT = ("core", "robot", "record", "runtime")  # run on the robot or recording computer: numpy, onnxruntime
NEVER = {
    "core": {"pipeline", "trainer", "export", "runtime", "robot", "record", "view", "torch"},
    "robot": {"torch", "trainer", "export", "record"},
    "record": {"torch", "trainer", "export"},
    "runtime": {"torch", "trainer", "export"},
    "trainer": {"export", "runtime"},
    "export": {"trainer"},
}
# Imported only inside a function, never when the module is imported.
ONLY_IN_FUNCTIONS = {"view": {"torch", "trainer"}}
# Optional third-party SDKs (extras): every package imports them inside the function that needs them.
OPTIONAL_SDKS = {"tensorrt", "cuda", "pyrealsense2", "interbotix_xs_modules", "rclpy", "dm_control", "metaworld", "av",
                 "pyarrow", "h5py", "tfrecord", "rerun"}


def violations(imports: list[Import]) -> list[str]:
    """Every broken rule, one line each (empty when the tree keeps them all)."""
    out = []
    for i in imports:
        a, b = node(i.source), node(i.target)
        if b in NEVER.get(a, ()):
            out.append(f"{a} never imports {b}: {i}")
        if b == "pipeline" and a != "pipeline":
            out.append(f"only console scripts and tests import the composition layer: {i}")
        if i.toplevel and b in ONLY_IN_FUNCTIONS.get(a, ()):
            out.append(f"{a} imports {b} only inside a function: {i}")
        if i.toplevel and b in OPTIONAL_SDKS:
            out.append(f"optional SDK {b} imported at module level: {i}")
    graph = package_graph(imports)
    for comp in cycles(graph):
        out.append(f"import cycle between packages {' <-> '.join(comp)}")
    for a in LIGHT:  # also through another package: robot -> core -> torch would break the robot computer too
        if "torch" in reachable(graph, a) and "torch" not in graph.get(a, ()):
            path = [b for b in graph.get(a, ()) if "torch" in reachable(graph, b) or b == "torch"]
            out.append(f"{a} reaches torch through {', '.join(sorted(path))}")
    return out
