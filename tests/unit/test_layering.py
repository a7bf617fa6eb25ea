"""The floors of the house, enforced: who may import whom (docs/architecture.md).

base/ is the ground and imports nothing of the project; content/ (bytes at rest) and
runtime/ (processes) stand on it and never on each other; mountpoint/ (the tree) sees
the services only through mountpoint/services.py and a few documented value types;
cdfs/ wires it all. Third-party libraries with a narrow job stay where declared. The
check reads every module's AST, so imports inside functions count too.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("base", "content", "runtime", "mountpoint", "cdfs")

# What mountpoint/ may take from content/ and runtime/: plain values that cross the
# seam (mountpoint/services.py) and one pure helper. Anything else is an internal.
MOUNTPOINT_VALUE_TYPES = {
    "content.descriptor": {"digest_hex"},
    "content.space": {"Space"},
    "content.store": {"IngestStatus"},
    "runtime.cgroups": {"Stats"},
    "runtime.state": {"LIVE"},
    "runtime.tasks": {"TaskInfo"},
}

# Third-party modules with one home (path prefixes relative to the repo).
DECLARED_HOMES = {
    "pyfuse3": ("mountpoint/", "cdfs/daemon.py"),
    "requests": ("content/registry/",),
    "pyroute2": ("runtime/netns.py",),
    "cgroupspy": (),  # the tests' witness only: runtime/cgroups.py reads files itself
}


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), path


def imports(path: Path) -> Iterator[tuple[str, set[str]]]:
    """(module, names imported from it) for every import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, set()
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, {alias.name for alias in node.names}


def top(module: str) -> str:
    return module.split(".", 1)[0]


ALL = [(rel, module, names) for rel, path in modules() for module, names in imports(path)]


def test_the_walk_sees_the_tree() -> None:
    files = {rel for rel, _, _ in ALL}
    assert {"mountpoint/fs.py", "cdfs/app.py", "content/unpacker.py"} <= files


def test_base_imports_nothing_of_the_project() -> None:
    bad = [(rel, m) for rel, m, _ in ALL
           if rel.startswith("base/") and top(m) in PACKAGES and top(m) != "base"]
    assert bad == []


@pytest.mark.parametrize(("floor", "never"), [
    ("content", {"runtime", "mountpoint", "cdfs"}),
    ("runtime", {"content", "mountpoint", "cdfs"}),
])
def test_content_and_runtime_stand_on_base_alone(floor: str, never: set[str]) -> None:
    bad = [(rel, m) for rel, m, _ in ALL if rel.startswith(floor + "/") and top(m) in never]
    assert bad == []


def test_mountpoint_sees_content_and_runtime_only_through_value_types() -> None:
    bad = []
    for rel, module, names in ALL:
        if rel.startswith("mountpoint/") and top(module) in ("content", "runtime"):
            extra = names - MOUNTPOINT_VALUE_TYPES.get(module, set())
            if extra or not names:
                bad.append((rel, module, sorted(extra)))
    assert bad == []


def test_mountpoint_takes_from_cdfs_only_the_services_values() -> None:
    """The tree never reaches the daemon's wiring (app, daemon, db, gc): what it calls
    is the Protocols of mountpoint/services.py, and what it imports from cdfs/services/
    are value types, constants and pure helpers (and the topics table, for README)."""
    bad = [(rel, m) for rel, m, _ in ALL if rel.startswith("mountpoint/") and top(m) == "cdfs"
           and not (m.startswith("cdfs.services.") or m == "cdfs.topics")]
    assert bad == []


def test_services_never_import_the_tree() -> None:
    bad = [(rel, m) for rel, m, _ in ALL if rel.startswith("cdfs/services/")
           and top(m) == "mountpoint"]
    assert bad == []


@pytest.mark.parametrize("library", sorted(DECLARED_HOMES))
def test_narrow_libraries_stay_home(library: str) -> None:
    homes = DECLARED_HOMES[library]
    found = sorted({rel for rel, m, _ in ALL if top(m) == library})
    assert all(rel.startswith(homes) for rel in found), found
    if homes:
        assert found, f"{library} is declared but imported nowhere"
