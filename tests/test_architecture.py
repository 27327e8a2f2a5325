"""The layers of the package are a test: no import loops, no import from a lower layer up to a
higher one, rooms of one layer independent of each other, ``rimclf.nn`` free of sklearn, skorch
and file I/O, and nothing in the library importing the command line.

The import graph is read from the source with :mod:`ast` (nothing is imported): every
``import`` and ``from ... import`` of every module, including those inside functions (rimclf
imports heavy modules lazily, and a lazy import is an arrow all the same). ``docs/architecture.md``
draws the same layers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rimclf"

#: The rooms of the library, bottom layer first. A module may import its own room and the rooms
#: of lower layers only; two rooms of one layer never import each other. A room is a module or a
#: package (all its submodules). ``docs/architecture.md`` lists the same table.
LAYERS: list[list[str]] = [
    ["rimclf._version", "rimclf.errors", "rimclf.defaults"],
    ["rimclf._validation", "rimclf._data_checks", "rimclf._records", "rimclf._tensor_files", "rimclf._atomic", "rimclf._orphans",
     "rimclf._sidecars", "rimclf.feature_registry"],
    ["rimclf.nn", "rimclf._nifti", "rimclf._bids", "rimclf.metrics"],
    ["rimclf.cohort", "rimclf.baselines", "rimclf.threshold", "rimclf.calibration"],
    ["rimclf.features", "rimclf.classifier", "rimclf.phantom", "rimclf.outputs"],
    ["rimclf.rim_model", "rimclf.benchmark", "rimclf.tuning", "rimclf._model_checks"],
    ["rimclf.model_files"],
    ["rimclf.workflows"],
    ["rimclf.demo"],
    ["rimclf.cli"],
]
#: The package's face (``rimclf/__init__.py``) stands above every layer: it names the public API.
FACE = "rimclf"

#: Third-party modules the pure-torch modules must not touch.
NOT_IN_NN = ("sklearn", "skorch", "imblearn", "nibabel", "pandas", "radiomics", "SimpleITK", "optuna", "joblib")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@lru_cache(maxsize=None)
def imports(module: str) -> frozenset[str]:
    """Every module ``module`` imports (rimclf's and third-party top-level names), anywhere in it."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, path.name == "__init__.py")
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(modules())
            found |= submodules  # "from rimclf import cohort" imports the module rimclf.cohort
            if len(submodules) < len(node.names):
                found.add(target)
    return frozenset(found)


def internal_graph() -> dict[str, set[str]]:
    """module -> the rimclf modules it imports (a package's ``__init__`` stands for the package)."""
    known = modules()
    return {
        module: {name for name in imports(module) if name in known and name != module}
        for module in known
    }


def room_of(module: str) -> tuple[int, str] | None:
    """(layer index, room) of a module; None for the package's face."""
    best = None
    for index, layer in enumerate(LAYERS):
        for room in layer:
            if (module == room or module.startswith(room + ".")) and (best is None or len(room) > len(best[1])):
                best = (index, room)
    return best


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                loop = visit(target)
                if loop:
                    return loop
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            loop = visit(node)
            if loop:
                return loop
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Arrows that run up a layer or across rooms of one layer."""
    found = []
    for module, targets in graph.items():
        if module == FACE:
            continue
        here = room_of(module)
        for target in sorted(targets):
            there = room_of(target)
            if target == FACE:
                found.append(f"{module} -> {target} (the package's face imports everything lazily)")
            elif here[1] != there[1] and there[0] >= here[0]:
                kind = "up" if there[0] > here[0] else "across"
                found.append(f"{module} (layer {here[0]}, {here[1]}) -> {target} (layer {there[0]}, {there[1]}): {kind}")
    return found


# ----------------------------------------------------------------------------------- tests
def test_every_module_has_a_room() -> None:
    assert [module for module in modules() if module != FACE and room_of(module) is None] == []
    rooms = [room for layer in LAYERS for room in layer]
    assert len(rooms) == len(set(rooms))
    assert all(any(m == room or m.startswith(room + ".") for m in modules()) for room in rooms), "a room without a module"


def test_the_documented_layers_are_these() -> None:
    """``docs/architecture.md`` lists every room in the layer this test enforces."""
    documented: dict[str, int] = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        row = re.match(r"\| (\d+) \| (.*?) \|", line)
        if row:
            for path in re.findall(r"`(rimclf/[\w/.]*)`", row.group(2)):
                documented[path.removesuffix("/").removesuffix(".py").replace("/", ".")] = int(row.group(1))
    assert documented == {room: index for index, layer in enumerate(LAYERS) for room in layer}


def test_no_import_loops() -> None:
    assert find_cycle(internal_graph()) is None


def test_no_import_runs_up_or_across_a_layer() -> None:
    assert layer_violations(internal_graph()) == []


def test_nn_is_plain_torch() -> None:
    base = set(LAYERS[0] + LAYERS[1])
    for module in modules():
        if module == "rimclf.nn" or module.startswith("rimclf.nn."):
            names = imports(module)
            rimclf = {name for name in names if name.split(".")[0] == "rimclf" and not name.startswith("rimclf.nn")}
            assert rimclf <= base, f"{module} imports {sorted(rimclf - base)}"
            assert not {name.split(".")[0] for name in names} & set(NOT_IN_NN), f"{module}: {sorted(names)}"


def test_base_layer_is_pure_python() -> None:
    """The base (errors, defaults, checks, records, atomic writes) imports no heavy library, so the
    command line's ``--help`` and ``rimclf.nn`` can use it."""
    heavy = {"torch", "sklearn", "skorch", "pandas", "scipy", "nibabel", "radiomics", "optuna", "matplotlib"}
    for room in LAYERS[0] + LAYERS[1]:
        names = {name.split(".")[0] for name in imports(room)}
        assert not names & heavy, f"{room} imports {sorted(names & heavy)}"


def test_features_and_classifier_never_import_each_other() -> None:
    graph = internal_graph()
    for a, b in (("rimclf.features", "rimclf.classifier"), ("rimclf.classifier", "rimclf.features")):
        assert not [(m, t) for m, targets in graph.items() if m.startswith(a) for t in targets if t.startswith(b)]


#: Top-level names that several modules define each for itself, and why (dunder names such as
#: ``__all__`` and ``__getattr__`` are each module's own anyway). Anything else defined twice is a
#: copy: define it once and import it.
PER_MODULE_NAMES = {
    "logger": "each module logs under its own name (logging.getLogger(__name__))",
    "_LAZY": "a package's table of lazily imported public names (rimclf, rimclf.benchmark)",
    "register": "each CLI subcommand module defines its arguments (rimclf/cli/__init__.py calls it by module)",
    "run": "each CLI subcommand module runs its command",
    "FORMAT": "the tag of one file format, in the module that reads and writes it (model files, feature cache)",
    "FORMAT_VERSION": "the version of one file format, bumped on its own (model files, feature cache)",
}


def _assigned(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _assigned(element)
    elif isinstance(target, ast.Starred):
        yield from _assigned(target.value)


def _defined(body: list[ast.stmt]) -> Iterator[str]:
    """Names a block of statements defines, looking into top-level ``if``/``try``/``with`` blocks."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _assigned(target)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            yield from _assigned(node.target)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in (getattr(node, "body", []), getattr(node, "orelse", []), getattr(node, "finalbody", []),
                          *[handler.body for handler in getattr(node, "handlers", [])]):
                yield from _defined(block)


def top_level_names(source: str) -> set[str]:
    """The names a module's source defines at its top level (functions, classes, assigned names;
    imported names are not definitions)."""
    return set(_defined(ast.parse(source).body))


def names_defined_twice(sources: dict[str, str]) -> dict[str, list[str]]:
    """``{name: [modules]}`` for every name defined in more than one of ``sources`` (module -> source)."""
    homes: dict[str, list[str]] = {}
    for module, source in sources.items():
        for name in top_level_names(source):
            if not (name.startswith("__") and name.endswith("__")) and name not in PER_MODULE_NAMES:
                homes.setdefault(name, []).append(module)
    return {name: where for name, where in homes.items() if len(where) > 1}


def test_every_name_has_one_home() -> None:
    """No top-level name is defined in two library modules (a name is imported, not copied)."""
    sources = {module: path.read_text(encoding="utf-8") for module, path in modules().items()}
    assert names_defined_twice(sources) == {}


def test_the_name_check_finds_copies() -> None:
    """A copied function, a constant unpacked in a tuple and one defined in a ``try`` all count;
    an import, a dunder name and a per-module name do not."""
    sources = {
        "a": "from b import shared\nlogger = 1\n__all__ = []\ndef copied(): pass\nX, Y = 1, 2\n",
        "b": "logger = 2\n__all__ = []\ndef shared(): pass\ndef copied(): pass\ntry:\n    Y = 3\nexcept ImportError:\n    pass\n",
    }
    assert names_defined_twice(sources) == {"copied": ["a", "b"], "Y": ["a", "b"]}


def test_benchmark_scripts_use_the_public_api() -> None:
    """The scripts in ``benchmarks/`` stand above the library: they import no private module of it."""
    private = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            private += [f"{path.name}: {name}" for name in names
                        if name.split(".")[0] == "rimclf" and any(part.startswith("_") for part in name.split("."))]
    assert private == []


def test_the_library_never_imports_the_command_line() -> None:
    graph = internal_graph()
    assert not [(m, t) for m, targets in graph.items() if not m.startswith("rimclf.cli")
                for t in targets if t.startswith("rimclf.cli")]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_the_loop_finder_finds_loops(graph, expected) -> None:
    assert find_cycle(graph) == expected


def test_the_checks_catch_a_bad_import() -> None:
    """An upward import (a feature module reaching the CLI) and an across import (features ->
    classifier) are both reported: the contract is a real test."""
    graph = {module: set(targets) for module, targets in internal_graph().items()}
    graph["rimclf.features.patches"] |= {"rimclf.cli._options", "rimclf.classifier.inputs"}
    graph["rimclf.errors"] = {"rimclf.features.patches"}
    found = layer_violations(graph)
    assert any("rimclf.features.patches" in line and "rimclf.cli._options" in line and "up" in line for line in found)
    assert any("rimclf.classifier.inputs" in line and "across" in line for line in found)
    assert find_cycle(graph) is not None
