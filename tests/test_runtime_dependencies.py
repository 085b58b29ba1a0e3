"""`pip install pingpost`, without extras, is enough for every command (`bench` and `demo` included):
the package imports only the standard library and its runtime dependencies (pyproject's
`dependencies` and what they pull in), never the `dev` extra (httpx, pytest, hypothesis...)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pingpost"
COMMAND_MODULES = [
    "pingpost.cli",
    "pingpost.bench.run",
    "pingpost.demo",
    "pingpost.processes",
    "pingpost.app",
    "pingpost.sandbox.app",
]


@cache
def runtime_distributions() -> frozenset[str]:
    """pingpost's runtime dependencies and everything they require, as installed here (normalised names)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(text), {""}) for text in project["dependencies"]]
    found: set[str] = set()
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker is not None and not any(requirement.marker.evaluate({"extra": e}) for e in extras):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here cannot be imported here either
        asked = {"", *requirement.extras}
        if name in found and not requirement.extras:
            continue
        found.add(name)
        todo += [(Requirement(text), asked) for text in dist.requires or []]
    return frozenset(found)


def _provided(runtime: bool) -> frozenset[str]:
    """Top-level modules of the installed distributions that are (or are not) pingpost's runtime ones."""
    ours = runtime_distributions() | {"pingpost"}
    return frozenset(
        module
        for module, dists in metadata.packages_distributions().items()
        if any(canonicalize_name(d) in ours for d in dists) == runtime
    )


@cache
def runtime_modules() -> frozenset[str]:
    """Top-level modules a plain install of pingpost can import: the standard library's, pingpost's and
    its runtime dependencies'."""
    return _provided(True) | set(sys.stdlib_module_names) | {"pingpost", "__future__"}


@cache
def dev_only_modules() -> frozenset[str]:
    """Top-level modules installed here that a plain install would not have (httpx, pytest...)."""
    return _provided(False) - runtime_modules()


def test_the_dev_extra_is_not_a_runtime_dependency() -> None:
    """The premise of the checks below: httpx, pytest and hypothesis come only with `[dev]`."""
    assert {"httpx", "pytest", "hypothesis"}.isdisjoint(runtime_distributions())
    assert {"aiohttp", "fastapi", "typer", "asyncpg"} <= runtime_distributions()


def test_every_import_in_the_package_is_a_runtime_one() -> None:
    """Every import statement, also those inside functions (imported lazily, only when a command runs)."""
    allowed = runtime_modules()
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offending += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.partition(".")[0] not in allowed
            ]
    assert offending == []


BLOCKER = """
import importlib, importlib.abc, json, sys

missing = set(json.loads(sys.argv[1]))


class RuntimeOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in missing:
            raise ModuleNotFoundError(f"No module named {name!r} (not a runtime dependency)", name=name)
        return None


sys.meta_path.insert(0, RuntimeOnly())
for module in sys.argv[2:]:
    importlib.import_module(module)
from typer.testing import CliRunner
from pingpost.cli import app

result = CliRunner().invoke(app, ["bench", "--help"])
assert result.exit_code == 0, result.output
print("ok")
"""


def test_the_commands_import_with_only_runtime_modules_available() -> None:
    """A fresh interpreter in which every module of a non-runtime distribution is missing, as after
    `pip install pingpost`; what the package imports lazily is covered by the AST check above."""
    assert {"httpx", "pytest", "hypothesis", "_pytest"} <= dev_only_modules()
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, json.dumps(sorted(dev_only_modules())), *COMMAND_MODULES],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
