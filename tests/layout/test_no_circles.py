"""No import circles below the admin web: a module never needs, even from inside a
function or under TYPE_CHECKING, a module that needs it back.

`test_imports` keeps the layers pointing down; inside one layer (``core.live.engine`` and
``core.live.recovery``, ``core.rubric.schema`` and ``core.rubric.validate``) only this test
sees a circle. Every import counts, as `test_imports.imports_of` finds them.
"""

from __future__ import annotations

from tests.layout.test_imports import imports_of, module_name, project_modules

CHECKED = ("kernels", "telephony", "core")


def import_graph() -> dict[str, set[str]]:
    """Each checked module, and the project modules it imports."""
    files = [p for p in project_modules() if module_name(p).split(".")[0] in CHECKED]
    names = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        module = module_name(path)
        targets = set()
        for target, _ in imports_of(path, module):
            while target and target not in names:  # `from core.x import name`: core.x
                target = target.rpartition(".")[0]
            if target and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_check_finds_a_circle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
