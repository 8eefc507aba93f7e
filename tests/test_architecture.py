"""The layers of the code, read from the code itself: imports point down only, no room reaches into
another's private names, and the tree passes the linter configured in pyproject.toml."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each room and the rooms it may import (besides itself). checks and registry are leaf helpers that
# serve every room; files (output checks, atomic writes, pickle-free array files) serves data,
# checkpoint and cli; data and checkpoint serve the rooms above nn.
ALLOWED = {
    "kernels": set(),
    "checks": {"kernels"},
    "registry": set(),
    "files": set(),
    "backend": {"kernels", "checks"},
    "nn": {"backend", "kernels", "checks", "registry"},
    "optim": {"nn", "backend", "kernels", "checks", "registry"},
    "data": {"checks", "files"},
    "training": {"distributed", "nn", "optim", "backend", "kernels", "checks", "registry"},
    "distributed": {"nn", "optim", "backend", "kernels", "checks", "registry"},
    "decomposition": {"nn", "optim", "backend", "kernels", "checks", "registry"},
    "checkpoint": {"nn", "optim", "backend", "kernels", "checks", "registry", "files"},
    "sklearn": {"training", "decomposition", "nn", "optim", "backend", "kernels", "checks", "registry"},
    "export": {"checkpoint", "nn", "backend", "kernels", "checks", "registry", "files"},
    "cli": {"training", "distributed", "decomposition", "export", "checkpoint", "data", "nn", "optim", "backend",
            "kernels", "checks", "registry", "files"},
}
TOP = {"__init__", "__main__"}  # the public face and the entry point may import every room


def _modules() -> dict[str, Path]:
    """gpudnn's modules by dotted name (kernels/ installs as gpudnn.kernels)."""
    found = {}
    for base, package in ((ROOT / "gpudnn", "gpudnn"), (ROOT / "kernels", "gpudnn.kernels")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [alias.name for alias in node.names]))
    return out


def _room(module: str) -> str | None:
    """The room of a gpudnn module: gpudnn.nn.layers -> nn; None outside gpudnn."""
    parts = module.split(".")
    if parts[0] != "gpudnn":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_point_down_only():
    modules = _modules()
    assert {_room(m) for m in modules} == set(ALLOWED) | TOP | {"data", "cli"}
    wrong = []
    for name, path in modules.items():
        room = _room(name)
        for module, names in _imports(name, path):
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            targets = submodules or [module]  # `from .. import checks` imports gpudnn.checks
            for target in targets:
                other = _room(target)
                if other is None or other == room or room in TOP:
                    continue
                if other not in ALLOWED[room]:
                    wrong.append(f"{path.relative_to(ROOT)}: {room} imports {target} ({other})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_room_reaches_into_another_rooms_private_names():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        room = _room(name)
        for module, names in _imports(name, path):
            if _room(module) in (None, room):
                continue
            private = [part for part in module.split(".")[1:] if part.startswith("_")]
            private += [n for n in names if n.startswith("_")]
            if private:
                wrong.append(f"{path.relative_to(ROOT)}: imports {module} {names}")
    assert not wrong, "private names used across rooms:\n" + "\n".join(wrong)


def test_the_layering_check_sees_a_wrong_import(tmp_path):
    """The AST reading above resolves relative imports: a kernel importing gpudnn.nn would be caught."""
    path = tmp_path / "mod.py"
    path.write_text("from ...nn.layers import Dense\nfrom .. import checks\n")
    found = _imports("gpudnn.kernels.sub.mod", path)
    assert [m for m, _ in found] == ["gpudnn.nn.layers", "gpudnn.kernels"]
    assert _room("gpudnn.nn.layers") not in ALLOWED["kernels"]


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (it comes with the test extra: pip install -e '.[test]')")
def test_the_tree_passes_ruff():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    out = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
