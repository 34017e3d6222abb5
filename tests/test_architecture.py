"""The import graph: arrows run downward only (design.md 5), and no module takes part in an import cycle.

Which room may import which is written down here, once. A new arrow is a design decision, made by editing
`MAY_IMPORT` with a reason, never by accident: the reference SUTs are SUTs (the engine reaches them only over
the network), and each shared concept has a room of its own below everything that uses it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import conformance

PACKAGE = Path(conformance.__file__).parent
FOUNDATIONS = {"binding", "crypto", "capture", "exit_codes", "yaml_lines", "suites"}  # import nothing of ours
# may start references, import anything
ENTRY_POINTS = {"cli", "pytest_plugin", "run", "selftest", "embedded", "forked_serve", "load"}  # load serves references

# room -> the rooms it may import (conformance's own __init__, the version, is open to all)
MAY_IMPORT: dict[str, set[str]] = {
    **{room: set() for room in FOUNDATIONS},
    "faults": {"yaml_lines"},  # the catalogue is data (faults.yaml)
    "masking": {"binding", "crypto"},  # what a secret is; used by the engine and by every output
    "emsdp": {"binding", "capture", "crypto"},
    "dtls": {"capture"},
    "keyserver": {"crypto"},
    "requirements": {"binding", "yaml_lines"},
    "profile": {"binding", "faults"},
    # the subscribers of pixit.subscriber_ranges, computed: shared by the reference SUTs and the load users
    "subscriber_ranges": {"profile"},
    "roles": {"binding", "capture", "crypto", "dtls", "emsdp", "keyserver"},
    # a SUT: what it is built of, never the harness's engine or roles
    "reference": {"binding", "capture", "crypto", "dtls", "emsdp", "keyserver", "profile", "faults"}
    | {"subscriber_ranges"},
    "engine": {"binding", "capture", "crypto", "dtls", "emsdp", "keyserver", "masking", "profile", "requirements"}
    | {"roles", "yaml_lines"},
    "report": {"binding", "crypto", "engine", "masking", "requirements"},
    "baseline": {"engine", "profile"},
    # worked known-answer vectors of a binding, computed with the harness's own crypto and codec
    "vectors": {"binding", "crypto", "emsdp"},
    # finds the binding a SUT speaks: reads captures, runs the UE role against the SUT; never starts a reference
    "probe": {"binding", "capture", "crypto", "emsdp", "roles"},
    # robustness testing of a SUT (issue 17): drives the roles, writes findings as engine cases; never a reference
    "fuzz": {"binding", "capture", "crypto", "emsdp", "keyserver", "roles", "engine", "masking", "profile"}
    | {"requirements"},
}


def room(module: str) -> str:
    """conformance.engine.verbs.ue -> engine; conformance.cli -> cli; conformance -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module of ours this file imports, at any depth (lazy and TYPE_CHECKING imports count)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("conformance"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("conformance"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in known else node.module


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target in imports(path, known) if target != name} for name, path in known.items()}


def test_every_room_is_placed():
    rooms = {room(name) for name in modules()} - {""}
    assert rooms <= set(MAY_IMPORT) | ENTRY_POINTS, f"rooms with no place: {rooms - set(MAY_IMPORT) - ENTRY_POINTS}"


def test_the_rooms_form_layers():
    """The allowed arrows themselves have no cycle: the rooms are layers."""
    order: list[str] = []
    pending = dict(MAY_IMPORT)
    while pending:
        ready = [r for r, below in pending.items() if below <= set(order)]
        assert ready, f"the allowed imports form a cycle among {sorted(pending)}"
        order += sorted(ready)
        for r in ready:
            del pending[r]


def test_arrows_run_downward_only():
    upward = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if room(name) in MAY_IMPORT and room(target) not in {room(name), ""} | MAY_IMPORT[room(name)]
    )
    assert not upward, "imports outside a room's allowed ones (tests/test_architecture.py MAY_IMPORT):\n" + "\n".join(
        upward
    )


def test_the_engine_reaches_reference_suts_only_over_the_network():
    near = {"engine", "roles", "profile"}
    reaching = sorted(f"{name} imports {target}" for name, targets in graph().items() for target in targets
                      if room(name) in near and room(target) == "reference")  # fmt: skip
    assert not reaching


def test_no_module_is_part_of_an_import_cycle():
    edges = graph()
    cycles = [sorted(component) for component in strongly_connected(edges) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in edges), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_the_cycle_finder_finds_cycles():
    """The check above can fail: a two-module cycle and a self-contained chain."""
    found = strongly_connected({"a": {"b"}, "b": {"a", "c"}, "c": set()})
    assert {"a", "b"} in found and {"c"} in found
