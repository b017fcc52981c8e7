"""Print the import graph between GeoMELT's parts and fail on an arrow the design forbids.

Usage: python scripts/check_imports.py [--root PATH]

The parts are the repository's top-level folders, imported as ``geomelt.<part>``. Allowed
arrows (docs/ARCHITECTURE.md): model and db import no other part; workers and engine import
model and db, never each other; cli, the composition root, may import every part. Imports are
read from the source with ``ast`` (nothing is executed), relative ones resolved by the file's
place, so the check also runs on a checkout with nothing installed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

PARTS = ("model", "db", "workers", "engine", "cli")
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "db": frozenset(),
    "workers": frozenset({"model", "db"}),
    "engine": frozenset({"model", "db"}),
    "cli": frozenset({"model", "db", "workers", "engine"}),
}


def _imported_parts(path: Path, part: str, root: Path) -> list[tuple[str, int]]:
    """(part imported, line) for every first-party import in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # A module's package, as dotted parts below the repository root ("engine.controllers").
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, *(node.module or "").split(".")]).strip(".")]
            else:
                names = [node.module or ""]
        for name in names:
            dotted = name.split(".")
            if dotted[0] == "geomelt" and len(dotted) > 1:
                dotted = dotted[1:]
            if dotted[0] in PARTS and dotted[0] != part:
                found.append((dotted[0], node.lineno))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    root: Path = parser.parse_args(argv).root.resolve()
    edges: Counter[tuple[str, str]] = Counter()
    violations: list[str] = []
    for part in PARTS:
        for path in sorted((root / part).rglob("*.py")):
            for target, line in _imported_parts(path, part, root):
                edges[(part, target)] += 1
                if target not in ALLOWED[part]:
                    where = path.relative_to(root)
                    violations.append(f"{where}:{line}: {part} -> {target} is not allowed")
    out = [f"{'from':<8} {'to':<8} {'imports':>7}  allowed"]
    for (source, target), count in sorted(edges.items()):
        verdict = "yes" if target in ALLOWED[source] else "NO"
        out.append(f"{source:<8} {target:<8} {count:>7}  {verdict}")
    sys.stdout.write("\n".join(out) + "\n")
    if violations:
        violations.append(
            f"{len(violations)} forbidden import(s): move the shared code down into db/ or "
            "model/, or wire it in cli/ (docs/ARCHITECTURE.md)"
        )
        sys.stderr.write("\n".join(violations) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
