"""The package's import rules (docs/architecture.md, "Who may import whom"), read from the source with `ast`.

Every `import` and `from ... import` counts, at module level or inside a function (a lazy import is still a
dependency, and still closes a circle at run time), `if TYPE_CHECKING:` ones included (they close circles for
the type checker and the reader). A submodule's implicit import of its parent package does not count.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "eksprivate"


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module (dotted, `root`'s name first) -> the names it imports: modules of the package resolved to the
    longest module that exists (`from eksprivate.steps import build_graph` is `eksprivate.steps`), other
    imports by their top-level name (`botocore`)."""
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path

    def resolve(name: str) -> str:
        if name.split(".")[0] != root.name:
            return name.split(".")[0]
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: the package does not use them, resolve anyway
                    base = module.split(".")[: len(module.split(".")) - node.level + (path.stem == "__init__")]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = str(node.module)
                names |= {resolve(f"{target}.{alias.name}") for alias in node.names}
        names.discard(module)
        graph[module] = names
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.get(module, ())):
            if other not in graph:
                continue  # outside the package
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class Rule:
    """Modules matching `modules` (but not `except_modules`) may import, from the package, only what `only`
    matches (when given), and never what `never` matches (package modules or outside names such as botocore)
    unless it also matches `unless`."""

    why: str
    modules: tuple[str, ...]
    only: tuple[str, ...] | None = None
    never: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    except_modules: tuple[str, ...] = ()

    def broken_by(self, graph: dict[str, set[str]]) -> list[str]:
        out = []
        for module, names in sorted(graph.items()):
            if not _matches(module, self.modules) or _matches(module, self.except_modules):
                continue
            for name in sorted(names):
                outside_only = self.only is not None and name in graph and not _matches(name, self.only)
                if outside_only or (_matches(name, self.never) and not _matches(name, self.unless)):
                    out.append(f"{module} imports {name}: {self.why}")
        return out


def family_modules() -> tuple[str, ...]:
    from eksprivate.sandbox.families import FAMILIES

    return tuple(str(family.__name__) for family in FAMILIES)  # type: ignore[attr-defined]


def rules() -> list[Rule]:
    """The table of docs/architecture.md ("Who may import whom"), row by row."""
    steps = ("eksprivate.steps", "eksprivate.steps.*")
    return [
        Rule("the sandbox's core knows no behaviour family", ("eksprivate.sandbox.core*",),
             only=("eksprivate.sandbox.core*",)),
        Rule("a behaviour family imports the core and leaves, never another family (shared state: the core)",
             family_modules(), only=("eksprivate.sandbox.core*", "eksprivate.sandbox.errors", "eksprivate.zones")),
        Rule("the product never depends on its AWS stand-in; the CLI only starts and stops it",
             ("eksprivate*",), never=("eksprivate.sandbox*",), unless=("eksprivate.sandbox.process",),
             except_modules=("eksprivate.sandbox*",)),
        Rule("aws is the only botocore importer (the sandbox, a moto wrapper, aside)", ("eksprivate*",),
             never=("boto3", "botocore"), except_modules=("eksprivate.aws*", "eksprivate.sandbox*")),
        Rule("the engine knows nothing of AWS", ("eksprivate.engine*",),
             never=("eksprivate.aws*", "boto3", "botocore")),
        Rule("steps never import what walks or shows them", steps,
             never=("eksprivate.engine*", "eksprivate.cli", "eksprivate.ui")),
        Rule("policy documents are plain values", ("eksprivate.steps.policies",), only=("eksprivate.partitions",)),
        Rule("the step base imports no step", ("eksprivate.steps.base",), never=steps),
        Rule("export is a command: only the CLI imports it (and `permissions`, for its read grants)",
             ("eksprivate*",), never=("eksprivate.export*",),
             except_modules=("eksprivate.cli", "eksprivate.permissions", "eksprivate.export*")),
        Rule("steps/iam.py imports no step: steps that own roles or policies import it and the leaf",
             ("eksprivate.steps.iam",), never=steps, unless=("eksprivate.steps.base", "eksprivate.steps.policies")),
    ]


def broken(graph: dict[str, set[str]]) -> list[str]:
    return [line for rule in rules() for line in rule.broken_by(graph)]


def test_the_package_has_no_import_circle() -> None:
    assert circles(import_graph(PACKAGE_ROOT)) == []


def test_every_import_follows_the_table() -> None:
    assert broken(import_graph(PACKAGE_ROOT)) == []


def test_the_sandbox_families_are_the_modules_that_install_behaviour() -> None:
    """Every sandbox module with an `install(patcher)` is in FAMILIES (so the family rule covers it), and every
    family has one."""
    graph = import_graph(PACKAGE_ROOT)
    installers = set()
    for module in graph:
        if not module.startswith("eksprivate.sandbox.") or module.startswith("eksprivate.sandbox.core"):
            continue
        path = PACKAGE_ROOT.parent / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text()) if path.exists() else ast.Module(body=[], type_ignores=[])
        if any(isinstance(n, ast.FunctionDef) and n.name == "install" and [a.arg for a in n.args.args] == ["patcher"]
               for n in tree.body):
            installers.add(module)
    assert installers == set(family_modules())


# -- the checker itself finds what it must -------------------------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "eksprivate" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "eksprivate"


@pytest.mark.parametrize("where", ["top", "function", "type_checking"])
def test_a_circle_is_found_wherever_its_import_sits(tmp_path: Path, where: str) -> None:
    back = {"top": "from eksprivate.a import x\n",
            "function": "def f():\n    from eksprivate import a\n",
            "type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from eksprivate.a import x\n"}
    root = _package(tmp_path, {"__init__.py": "", "a.py": "from eksprivate.b import y\nx = 1\n",
                               "b.py": back[where] + "y = 2\n", "c.py": "import eksprivate.a\n"})
    assert circles(import_graph(root)) == [["eksprivate.a", "eksprivate.b"]]


def test_a_forbidden_import_is_named(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "", "engine.py": "import botocore.session\n",
        "steps/__init__.py": "", "steps/base.py": "", "steps/policies.py": "",
        "steps/iam.py": "from eksprivate.steps.base import Step\nfrom eksprivate.steps.addons import EbsCsiRole\n",
        "steps/addons.py": "",
        "sandbox/__init__.py": "", "sandbox/core/__init__.py": "", "sandbox/core/clock.py": "",
        "sandbox/core/patching.py": "from eksprivate.sandbox import eks_updates\n",
        "sandbox/eks_updates.py": "from eksprivate.sandbox.core import clock\n",
        "sandbox/eks_addons.py": "from eksprivate.sandbox import eks_updates\n",
    })
    found = broken(import_graph(root))
    assert [line.split(":")[0] for line in found] == [
        "eksprivate.sandbox.core.patching imports eksprivate.sandbox.eks_updates",
        "eksprivate.sandbox.eks_addons imports eksprivate.sandbox.eks_updates",
        "eksprivate.engine imports botocore",
        "eksprivate.engine imports botocore",
        "eksprivate.steps.iam imports eksprivate.steps.addons",
    ]
