"""The house rules of the package, read off its source (docs/ARCHITECTURE.md, "Rules"):

* only the engine packages (``maintenance_pipeline/core/engines/``) know which engine they are: nowhere
  else does code compare with an engine's name, read a connection's ``dialect.name`` or a URL's backend
  or scheme, or key a table by engine names;
* the package has no import cycle (imports inside functions count: a lazy import hides a cycle, it does
  not remove it);
* a URL of an engine no package provides is one clear error when the targets file is loaded.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from targets import ROOT, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConfigError

PACKAGE = ROOT / "maintenance_pipeline"
ENGINES = PACKAGE / "core" / "engines"
ENGINE_NAMES = {"sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql"}
URL_PARTS = {"get_backend_name", "get_driver_name", "drivername", "sqlite_path"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _engine_branches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name if ROOT not in path.parents else path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and isinstance(side.value, str) and side.value.lower() in ENGINE_NAMES:
                    found.append(f"{where}: compares with {side.value!r}")
                if isinstance(side, (ast.Tuple, ast.List, ast.Set)) and any(
                        isinstance(e, ast.Constant) and str(e.value).lower() in ENGINE_NAMES for e in side.elts):
                    found.append(f"{where}: compares with a list of engine names")
        elif isinstance(node, ast.Attribute):
            if node.attr == "name" and isinstance(node.value, ast.Attribute) and node.value.attr == "dialect":
                found.append(f"{where}: reads dialect.name")
            elif node.attr in URL_PARTS:
                found.append(f"{where}: reads the URL's {node.attr}")
        elif isinstance(node, ast.Name) and node.id in URL_PARTS:
            found.append(f"{where}: calls {node.id}")
        elif isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and str(k.value).lower() in ENGINE_NAMES for k in node.keys):
            found.append(f"{where}: a table keyed by engine names")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
            if any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                   and any(a.value.lower().startswith(n) for n in ENGINE_NAMES) for a in node.args):
                found.append(f"{where}: startswith an engine name")
    return found


def test_only_the_engine_packages_know_which_engine_they_are():
    offenders = [b for p in _modules() if ENGINES not in p.parents for b in _engine_branches(p)]
    assert not offenders, "\n".join(offenders)


def test_the_branch_finder_finds_branches(tmp_path):
    """The rule above can fail: each way of asking "which engine?" is found."""
    probe = tmp_path / "probe.py"
    probe.write_text('if conn.dialect.name == "sqlite":\n    pass\n'
                     'x = u.get_backend_name()\n'
                     'y = {"postgresql": 1}\n'
                     'z = url.startswith("postgres")\n'
                     'w = sqlite_path(url)\n')
    found = _engine_branches(probe)
    assert len(found) == 6, found  # the comparison and dialect.name on line 1, then one a line


def _imports(path: Path, name: str, is_package: bool, known: set[str]) -> set[str]:
    base = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            parts = (base[: len(base) - node.level + 1] if node.level else []) + (node.module or "").split(".")
            mod = ".".join(p for p in parts if p)
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            out.update(subs or [mod])
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    out |= _dynamic_imports(path, name, is_package, known)
    return {m for m in out if m in known and m != name and not name.startswith(m + ".")}  # a parent's __init__


def _dynamic_imports(path: Path, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Imports no import statement shows: ``importlib.import_module`` of a literal name, and a package that imports
    each of its children (``pkgutil.iter_modules(__path__)`` + ``import_module``: the engine registry)."""
    src = path.read_text()
    out = set(re.findall(r"import_module\(\s*[\"']([\w.]+)[\"']", src))
    if is_package and "iter_modules(__path__" in src and "import_module(" in src:
        out |= {m for m in known if m.startswith(name + ".") and "." not in m[len(name) + 1:]}
    return out


def test_no_import_cycle():
    mods = {}
    for p in _modules():
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts[:-1]) if p.name == "__init__.py" else list(rel.parts)
        mods[".".join(parts)] = (p, p.name == "__init__.py")
    graph = {m: _imports(p, m, pkg, set(mods)) for m, (p, pkg) in mods.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_cycle_finder_sees_the_engine_registry_edge():
    """The registry imports every engine package by name at run time (``engines/__init__.py``): an edge from
    ``engines`` to each engine package that no import statement shows, counted like the others."""
    init = ROOT / "maintenance_pipeline" / "core" / "engines" / "__init__.py"
    known = {"maintenance_pipeline.core.engines.sqlite", "maintenance_pipeline.core.engines.postgresql",
             "maintenance_pipeline.core.engines.base", "maintenance_pipeline.core.engines.sqlite.backup"}
    edges = _imports(init, "maintenance_pipeline.core.engines", True, known)
    assert {"maintenance_pipeline.core.engines.sqlite", "maintenance_pipeline.core.engines.postgresql"} <= edges
    assert "maintenance_pipeline.core.engines.sqlite.backup" not in edges  # children, not grandchildren


def test_the_engines_import_nothing_above_them():
    """The floors run one way: what the engines use lives below them (``core/shared/``); no module of
    ``core/engines/`` imports backups, verify or the schema snapshot's registry-loading front door."""
    above = ("maintenance_pipeline.core.backup", "maintenance_pipeline.core.verify",
             "maintenance_pipeline.core.schema.snapshot", "maintenance_pipeline.core.run",
             "maintenance_pipeline.core.migrate", "maintenance_pipeline.core.config")
    mods = {}
    for p in _modules():
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts[:-1]) if p.name == "__init__.py" else list(rel.parts)
        mods[".".join(parts)] = (p, p.name == "__init__.py")
    found = [f"{m} imports {n}" for m, (p, pkg) in sorted(mods.items()) if m.startswith("maintenance_pipeline.core.engines")
             for n in sorted(_imports(p, m, pkg, set(mods))) if n.startswith(above)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("url", ["mysql://app@db.example.com/app", "oracle://app@db/app"])
def test_an_engine_no_package_provides_is_one_error_at_load(tmp_path, url):
    path = write_config(tmp_path, {"app": {"url": url, "reference": {"url": "sqlite:///ref.db"}}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and "targets.app.url" in message
    assert "not supported" in message and "postgresql, sqlite" in message
