"""The shape of the package (docs/architecture.md): every module under src/asyncrl is read
and its imports of other asyncrl modules (at the top and inside functions alike) must
point down or sideways in LAYERS, form no cycle, and name no other module's underscore
names. No module passes MAX_LINES."""
from __future__ import annotations

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PACKAGE = "asyncrl"

#: the layers, lowest first: a module may import from its own layer and the layers below.
#: An entry names a module or a package (all its modules), relative to asyncrl; the longest
#: entry that matches a module decides ("atari.registry" before "atari"). "" is asyncrl's
#: own __init__.
LAYERS = [
    ["errors", "system", "procs", "threads", "flat", "returns", "paths"],   # foundations: no asyncrl imports but these
    ["presets", "sources", "atari.registry"],                                # data the config's defaults need
    ["config"],                                                     # fields, coercion, rules
    ["spaces", "atari", "pixels", "envs", "success", "pomdp", "video", "budget"],  # environments, their spaces, what a run needs
    ["nets", "rollout"],                                            # networks; rollouts and collectors
    ["vector"],                                                     # environments stepped in batches
    ["algos"],                                                      # the math of each method
    ["optim", "learner"],                                           # optimisers; rollout -> gradient -> update
    ["executors"],                                                  # processes, ray, the sync loop
    ["loggers", "metrics", "checkpoint", "evaluate", "curves", "plot", "run", "acting"], # what a run writes and reads; acting
    ["evaluator", "callbacks", "training"],                         # evaluation in the background, callbacks
    ["api", "resume"],                                              # the Agent facade; continuing a run folder
    ["bench", "export"],                                            # benchmarks; policies out of Python
    ["cli", "cli_args", "cli_train", "seeds", "status", "__main__", ""],                              # the command line; what `train` says at the end
]
MAX_LINES = 400


def _modules() -> dict[str, str]:
    """module name -> path, for every .py file of the package."""
    out = {}
    root = os.path.join(SRC, PACKAGE)
    for folder, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, f), SRC)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join(rel)] = os.path.join(folder, f)
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, "").endswith("__init__.py")


def _imports(name: str, path: str) -> list[tuple[str, list[str], int]]:
    """(imported asyncrl module, names taken from it, line) for each import in the file;
    `from pkg import sub` of a submodule counts as an import of pkg.sub."""
    tree = ast.parse(open(path).read(), path)
    here = name if _is_package(name) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            names = []
            for a in node.names:
                if f"{target}.{a.name}" in MODULES:
                    out.append((f"{target}.{a.name}", [], node.lineno))
                else:
                    names.append(a.name)
            if names:
                out.append((target, names, node.lineno))
    return out


def _module_aliases(name: str, path: str) -> dict[str, str]:
    """Local names bound to asyncrl modules by imports (import asyncrl.x as m, from . import m)."""
    tree = ast.parse(open(path).read(), path)
    aliases = {}
    here = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PACKAGE and a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = here.split(".")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:
                if f"{target}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{target}.{a.name}"
    return aliases


def layer_of(module: str) -> int:
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    best, found = -1, None
    for i, entries in enumerate(LAYERS):
        for entry in entries:
            matches = rel == entry or (entry and rel.startswith(entry + "."))
            if matches and len(entry) > best:
                best, found = len(entry), i
    if found is None:
        raise AssertionError(f"module {module} is in no layer of LAYERS: place it there")
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_no_import_points_to_a_higher_layer():
    bad = []
    for name, imports in GRAPH.items():
        for target, _, line in imports:
            if target in MODULES and layer_of(target) > layer_of(name):
                bad.append(f"{MODULES[name]}:{line}: {name} (layer {layer_of(name)}) imports {target} "
                           f"(layer {layer_of(target)})")
    assert not bad, "\n".join(bad)


def test_no_module_takes_another_modules_underscore_names():
    bad = []
    for name, imports in GRAPH.items():
        for target, names, line in imports:
            taken = [n for n in names if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
            if taken and target != name:
                bad.append(f"{MODULES[name]}:{line}: imports {', '.join(taken)} from {target}")
        aliases = _module_aliases(name, MODULES[name])
        for node in ast.walk(ast.parse(open(MODULES[name]).read())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append(f"{MODULES[name]}:{node.lineno}: uses {aliases[node.value.id]}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    """Tarjan's strongly connected components over the explicit imports."""
    edges = {n: sorted({t for t, _, _ in imps if t in MODULES and t != n}) for n, imps in GRAPH.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_short(name):
    with open(MODULES[name]) as fh:
        n = sum(1 for _ in fh)
    assert n <= MAX_LINES, f"{MODULES[name]} has {n} lines (at most {MAX_LINES}): split it by purpose"


def test_the_checks_catch_what_they_check(tmp_path):
    """The resolver sees a relative import, a submodule import and an underscore name."""
    assert ("asyncrl.config", ["Config"], 10) in [(t, n, 10) for t, n, _ in GRAPH["asyncrl.executors.base"]]
    assert layer_of("asyncrl.atari.registry") < layer_of("asyncrl.config") < layer_of("asyncrl.atari")
    assert layer_of("asyncrl.executors.hogwild") > layer_of("asyncrl.learner")
