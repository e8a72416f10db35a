"""Imports point one way: each layer may import only the layers below it.

Every module of the project is parsed with `ast`, and each import of a project module
(top level, inside functions, and under TYPE_CHECKING alike) is checked against the layer
order below. A new upward import fails here, with the module and line that made it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernels", "telephony", "core", "admin_web", "proto")

# Lowest first. A module belongs to the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("proto",),
    ("kernels",),
    ("telephony",),
    ("core", "core.config", "core.clock", "core.calls", "core.text_norm", "core.stage_cpu"),
    ("core.audio",),
    ("core.asr",),
    ("core.rubric",),
    ("core.storage",),
    ("core.scoring",),
    ("core.live",),
    ("core.ingest",),
    # `callqa serve` as a child process: it imports nothing of core, and the capacity ramp
    # starts daemons with it.
    ("core.daemon.child",),
    ("core.capacity",),
    ("core.api",),
    ("core.daemon",),
    ("core.cli",),
    ("admin_web",),
)
# Layers that may import each other's modules only through these named exceptions.
ALLOWED: set[tuple[str, str]] = set()


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (level, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files += [p for p in (ROOT / package).rglob("*.py") if "_pb2" not in p.name]
    return sorted(files)


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from core import clock` names a module: check it too.
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.split(".")[0] in PACKAGES]


def upward_imports() -> list[str]:
    problems: list[str] = []
    for path in project_modules():
        module = module_name(path)
        own = layer_of(module)
        if own is None:
            problems.append(f"{module}: in no layer (add it to LAYERS)")
            continue
        for target, line in imports_of(path, module):
            other = layer_of(target)
            if other is None or (module, target) in ALLOWED:
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if other > own and not any(p.startswith(where + ":") for p in problems):
                problems.append(f"{where}: {module} imports {target}, a higher layer")
    return problems


def test_every_import_points_down() -> None:
    problems = upward_imports()
    assert not problems, "\n".join(problems)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("from core.cli import main\nimport admin_web\n")
    found = [t for t, _ in imports_of(source, "core.storage.probe")]
    assert "core.cli" in found and "admin_web" in found
    assert layer_of("core.cli") > layer_of("core.storage.probe")  # type: ignore[operator]
    assert layer_of("core.storage.db") == layer_of("core.storage")
    assert layer_of("core.calls") < layer_of("core.audio.wav")  # type: ignore[operator]
