"""House rules that can silently erode: harness imports neither track; the tracks never import each other."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_packages(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_harness_imports_neither_track():
    assert not _imported_packages("harness") & {"graphrepair", "jepa"}


def test_tracks_do_not_import_each_other():
    assert "jepa" not in _imported_packages("graphrepair")
    assert "graphrepair" not in _imported_packages("jepa")


def test_jepa_is_an_importable_documented_package():
    import jepa

    assert "teacher" in jepa.__doc__ and "student" in jepa.__doc__


def test_graphrepair_has_the_packages_of_the_design_and_its_commands_at_the_top():
    """DESIGN.md "Layout": one concept per subpackage; every documented command keeps its name."""
    import importlib

    for package in ("data", "graphs", "features", "feedback", "models", "loop", "evaluation", "repair"):
        module = importlib.import_module(f"graphrepair.{package}")
        assert module.__doc__ and (ROOT / "graphrepair" / package / "__init__.py").is_file()
        assert (ROOT / "tests" / "graphrepair" / package).is_dir(), f"tests do not mirror {package}"
    for command in ("train", "evaluate", "compare", "localize", "repair.cli"):
        assert callable(importlib.import_module(f"graphrepair.{command}").main), command
    assert (ROOT / "graphrepair" / "repair" / "__main__.py").is_file()  # python -m graphrepair.repair
