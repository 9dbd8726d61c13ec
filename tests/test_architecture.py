"""The tree as a map (issue 15, docs/architecture.md "The tree"): no import cycle among the
package's modules, counting the imports inside functions too; the top of ``dunning/``
holds only the app's face and foundations; the old paths of moved modules still work,
warn, and are never used by the package itself. The layers themselves are checked by
import-linter (``make lint``, the contract in pyproject.toml)."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dunning"

#: Cycles left to break, each a set of modules (a ratchet: a new cycle fails, and so does
#: one of these going away without this list being updated).
#: - engine.outbox <-> engine.run: the outbox builds a DunningRun to drain and reads the
#:   run's Pending; goes with the run as a thin orchestrator (issue 15, second point).
KNOWN_CYCLES = {
    frozenset({"dunning.engine.outbox", "dunning.engine.run"}),
}

#: Old path -> new path of the modules that moved; the old one is a shim that warns.
MOVED = {
    "dunning.actors": "dunning.engine.actors",
    "dunning.anymail_urls": "dunning.tracking.urls",
    "dunning.charging": "dunning.engine.charging",
    "dunning.history": "dunning.messages.history",
    "dunning.notices_receivers": "dunning.notices.receivers",
    "dunning.notices_views": "dunning.notices.views",
    "dunning.rendering": "dunning.messages.rendering",
    "dunning.reports": "dunning.queries.reports",
    "dunning.segments": "dunning.engine.segments",
    "dunning.services": "dunning.engine.actions",
    "dunning.timeline": "dunning.queries.timeline",
    "dunning.variants": "dunning.messages.variants",
}

#: What the top of dunning/ may hold besides packages: the app's face and foundations.
FACE_AND_FOUNDATIONS = {
    "__init__", "apps", "checks", "conf", "db", "exceptions", "formatting", "hosts", "inputs",
    "receivers", "sandbox", "signals", "tasks", "testing", "urls", "failures", "plugins",
    # pure fee and interest rules: below the models (to dunning.rules, issue 15)
    "fees",
}


def modules():
    """{dotted name: path} of every module of the package but its migrations."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue
        parts = ["dunning", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph():
    """{module: {imported module, ...}} over the package, every import statement wherever
    it stands (module level or inside a function), resolved to the package's modules."""
    mods = modules()

    def resolve(name):
        while name:
            if name in mods:
                return name
            name = name.rpartition(".")[0]
        return None

    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(resolve(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in mods else resolve(source))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycle_but_the_known_ones():
    found = set(cycles(import_graph()))
    new = found - KNOWN_CYCLES
    assert not new, f"new import cycles: {[sorted(c) for c in new]}"
    gone = KNOWN_CYCLES - found
    assert not gone, f"broken cycles still listed in KNOWN_CYCLES: {[sorted(c) for c in gone]}"


def test_the_top_of_the_package_holds_only_its_face_and_foundations():
    top = {path.stem for path in PACKAGE.glob("*.py")}
    shims = {old.rpartition(".")[2] for old in MOVED}
    assert top - shims == FACE_AND_FOUNDATIONS


def test_the_package_never_imports_an_old_path():
    graph = import_graph()
    users = {name: sorted(set(MOVED) & targets) for name, targets in graph.items()
             if name not in MOVED and set(MOVED) & targets}
    assert users == {}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_still_works_and_warns(old, new):
    moved = importlib.import_module(new)
    saved = sys.modules.pop(old, None)
    try:
        with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
            shim = importlib.import_module(old)
        public = [n for n in vars(moved) if not n.startswith("__")]
        assert public and all(getattr(shim, n) is getattr(moved, n) for n in public)
    finally:
        if saved is not None:
            sys.modules[old] = saved


def test_services_still_offers_the_actions_that_start_a_run():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        services = importlib.import_module("dunning.services")
    from dunning.engine import actions, ondemand

    assert services.send_now is ondemand.send_now
    assert services.run_for_customers is ondemand.run_for_customers
    assert services.PROMISE_GRACE_DAYS == actions.PROMISE_GRACE_DAYS
    assert services.record is actions.record


def test_a_feature_face_does_not_import_its_views():
    """Importing the unsubscribe link (the messages do) loads neither the unsubscribe
    page nor the self-service page's views."""
    import subprocess

    code = (
        "import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; "
        "django.setup(); import dunning.unsubscribe.links, dunning.messages.rendering; "
        "print(sorted(m for m in ('dunning.unsubscribe.views', 'dunning.portal.views') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, check=True).stdout
    assert out.strip() == "[]"
    from dunning import unsubscribe
    from dunning.unsubscribe import links, views

    assert unsubscribe.message_link is links.message_link
    assert unsubscribe.page is views.page
