"""Map fedtts's own imports: cycles at import time and imports hidden inside functions.

Why: a cycle means no module of it can be read (or imported) on its own, and an import inside a
function hides a dependency from anyone reading the top of the file. Both are counted from the source
alone (``ast``), so the map is cheap enough for a test (``tests/test_import_graph.py``).

Two kinds of cycle are counted (strongly connected components of more than one module):

- dependency cycles: over every fedtts import, inside functions too (an import deferred into a
  function hides a cycle from Python, not from the reader);
- import-time cycles: over module-level imports only, with the packages Python runs first.

Usage: ``python scripts/import_graph.py [--list] [--src DIR]`` prints both and the number of fedtts
imports inside functions; ``--list`` names each in-function import with its reason
(``DEFERRED_REASONS``); ``--src`` measures another tree
(e.g. ``git archive HEAD src | tar -x -C /tmp/head`` then ``--src /tmp/head/src``). Exit status 1
when there is a dependency cycle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT_PACKAGE = "fedtts"
MAX_DEFERRED = 40  # fedtts imports inside functions (issue 16's ceiling)

# The modules an in-function import may defer, each with why (one word): importing it at module top
# would load an optional extra (torch, flwr, the serve extra's fastapi/gradio), the Wyoming stack,
# training code or the evaluation ruler into every ``fedtts`` command (the CLI builds all its command
# groups on each call). A prefix covers a package's modules.
DEFERRED_REASONS: dict[str, str] = {
    "fedtts.engine.torch_model": "torch",
    "fedtts.engine.inversion": "torch",
    "fedtts.engine.reconstruction": "torch",
    "fedtts.app.server": "fastapi",
    "fedtts.app.web": "gradio",
    "fedtts.app.wyoming_server": "wyoming",
    "fedtts.federated.client_app": "flwr",
    "fedtts.federated.server_app": "flwr",
    "fedtts.federated.dictsync_app": "flwr",
    "fedtts.train": "train",
    # the independent speaker-verification ruler, and the evaluations built on it: only `fedtts eval`
    # loads it, so no synthesis process holds the model nothing in fedtts may optimise against
    "fedtts.eval.asv": "ruler",
    "fedtts.eval.clone_eval": "ruler",
    "fedtts.eval.emotion_eval": "ruler",
}


@dataclass
class ModuleImports:
    """The fedtts modules one module imports, split by where the import statement sits."""

    name: str
    top: set[str] = field(default_factory=set)  # executed when the module is imported
    deferred: list[tuple[int, str]] = field(default_factory=list)  # (line, target) inside functions


def module_names(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package under ``src``, by dotted name (packages by their ``__init__``)."""
    out: dict[str, Path] = {}
    for path in sorted((src / ROOT_PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_pkg: bool, known: set[str]) -> set[str]:
    """The fedtts modules an import statement loads (a ``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == ROOT_PACKAGE}
    base = node.module or ""
    if node.level:
        anchor = here.split(".") if is_pkg else here.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    if base.split(".")[0] != ROOT_PACKAGE:
        return set()
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.add(sub if sub in known else base)
    return out


def _closest_module(name: str, known: set[str]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _visit(
    node: ast.AST, info: ModuleImports, is_pkg: bool, known: set[str], in_function: bool = False
) -> None:
    """Record the fedtts imports under ``node``; those inside a function or lambda as deferred."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            continue  # annotations only: never executed
        if isinstance(child, ast.Import | ast.ImportFrom):
            for target in _targets(child, info.name, is_pkg, known):
                mod = _closest_module(target, known)
                if mod is None or mod == info.name:
                    continue
                if in_function:
                    info.deferred.append((child.lineno, mod))
                else:
                    info.top.add(mod)
            continue
        nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        _visit(child, info, is_pkg, known, in_function or nested)


def scan(src: Path = SRC) -> dict[str, ModuleImports]:
    """Parse every module and classify its fedtts imports as top-level or deferred."""
    modules = module_names(src)
    known = set(modules)
    out: dict[str, ModuleImports] = {}
    for name, path in modules.items():
        info = ModuleImports(name)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        _visit(tree, info, path.name == "__init__.py", known)
        out[name] = info
    return out


def deferral_reason(target: str) -> str | None:
    """Why an in-function import of ``target`` is deferred (``DEFERRED_REASONS``), None if no reason."""
    name = target
    while name:
        if name in DEFERRED_REASONS:
            return DEFERRED_REASONS[name]
        name = name.rpartition(".")[0]
    return None


def import_edges(graph: dict[str, ModuleImports]) -> dict[str, set[str]]:
    """Module-level edges, adding the packages Python runs first (``import a.b.c`` runs ``a.b``).

    A package's own ``__init__`` importing its submodules is not counted against the submodules
    (Python has the package half-initialised by then and submodules of it load normally).
    """
    edges: dict[str, set[str]] = {}
    for name, info in graph.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        deps = set()
        for target in info.top:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                pkg = ".".join(parts[:i])
                if pkg in graph and pkg not in own and pkg != name:
                    deps.add(pkg)
        edges[name] = deps
    return edges


def dependency_edges(graph: dict[str, ModuleImports]) -> dict[str, set[str]]:
    """Module → every fedtts module it imports, at module level or inside functions."""
    return {name: info.top | {t for _, t in info.deferred} for name, info in graph.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="name every in-function fedtts import")
    ap.add_argument("--src", type=Path, default=SRC, help="the directory holding the fedtts package")
    args = ap.parse_args(argv)
    graph = scan(args.src)
    found = cycles(dependency_edges(graph))
    at_import = cycles(import_edges(graph))
    deferred = [(n, line, t) for n, info in sorted(graph.items()) for line, t in info.deferred]
    print(f"dependency cycles: {len(found)} ({sum(len(c) for c in found)} modules)")
    for comp in found:
        print("  " + " ".join(comp))
    print(f"import-time cycles: {len(at_import)} ({sum(len(c) for c in at_import)} modules)")
    for comp in at_import:
        print("  " + " ".join(comp))
    print(f"fedtts imports inside functions: {len(deferred)} (ceiling {MAX_DEFERRED})")
    if args.list:
        for name, line, target in deferred:
            print(f"  {name}:{line} -> {target} [{deferral_reason(target) or 'NO REASON'}]")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
