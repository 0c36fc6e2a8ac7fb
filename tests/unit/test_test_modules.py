"""The tests' own layout: no module under tests/ imports a test module (test_*.py). What several
test files share lives in tests/support/; fixtures live in conftest.py files."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_test_modules(path: Path) -> list[str]:
    """The test modules (tests.**.test_*) that the file at `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return sorted(m for m in found if m.startswith("tests.") and m.rsplit(".", 1)[-1].startswith("test_"))


def test_no_module_under_tests_imports_a_test_module() -> None:
    offenders = {str(path.relative_to(TESTS.parent)): found for path in sorted(TESTS.rglob("*.py"))
                 if (found := imported_test_modules(path))}
    assert offenders == {}, f"move what is shared into tests/support/: {offenders}"


def test_the_check_sees_both_forms_of_import(tmp_path: Path) -> None:
    bad = tmp_path / "test_x.py"
    bad.write_text("from tests.e2e.test_processes import tls_env\nimport tests.unit.test_rules as r\n"
                   "from tests.support.status import refused\n")
    assert imported_test_modules(bad) == ["tests.e2e.test_processes", "tests.unit.test_rules"]
