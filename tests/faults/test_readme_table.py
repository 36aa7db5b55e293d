"""docs/reliability.md's table and the suite name the same tests: every fault-suite test has
a row, and every row names a test that exists (in the fault suite or elsewhere in tests/)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    }


def test_table_and_suite_agree():
    doc = (ROOT / "docs" / "reliability.md").read_text()
    in_table = set(re.findall(r"\| `(test_\w+)` \|", doc))
    suite = set()
    for f in (ROOT / "tests" / "faults").glob("test_*.py"):
        suite |= _tests_in(f)
    suite.discard("test_table_and_suite_agree")
    everywhere = set()
    for f in (ROOT / "tests").rglob("test_*.py"):
        everywhere |= _tests_in(f)
    assert suite - in_table == set(), "tests missing from docs/reliability.md's table"
    assert in_table - everywhere == set(), "docs/reliability.md names absent tests"
