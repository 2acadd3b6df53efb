"""Every test README's "Guarantees" table names exists, so the table cannot point at nothing."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def guarantee_tests() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    section = section.split("| guarantee | test |", 1)[1]  # the table, not the sentence before it
    found, current = [], None
    for cell in re.findall(r"`([^`]+)`", section):
        if "::" in cell:
            path, name = cell.split("::", 1)
            current = path if path else current
            found.append((current, name))
        elif cell.startswith("tests/") and cell.endswith(".py"):
            current = cell
            found.append((cell, None))
    return found


def test_the_guarantees_table_names_tests_that_exist():
    named = guarantee_tests()
    assert len(named) >= 20
    for path, name in named:
        source = (REPO / path).read_text(encoding="utf-8")
        if name is not None:
            assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{path}::{name} does not exist"
