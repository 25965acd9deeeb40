"""Print the import graph between reasonlens' rooms and fail on an upward arrow or a cycle.

Rooms, bottom to top: the shared base modules (errors, columns, options, records, progress, exports, folders), then
sources -> models -> hierarchy -> metrics -> report, then the two commands' packages analysis and
train, then the top (the package root and cli). A room may import its own room and the rooms below
it, and no two modules may import each other. Every import counts, lazy ones inside functions included.

Run: python tools/rooms.py            (exit code 1 and the offending imports on a violation)
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reasonlens"
BASE = ("errors", "columns", "options", "records", "progress", "exports", "folders")
ORDER = ("base", "sources", "models", "hierarchy", "metrics", "report", "analysis", "train", "top")


def room(module: str) -> str:
    """The room of a dotted module name inside the package (``reasonlens.models.loading`` -> models)."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__init__":
        return "top"
    if parts[0] in BASE:
        return "base"
    return parts[0] if parts[0] in ORDER else "top"


def imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, file:line) for every reasonlens import in the package."""
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            found += [(module, t, f"{file.relative_to(PACKAGE.parent)}:{node.lineno}")
                      for t in targets if t == "reasonlens" or t.startswith("reasonlens.")]
    return found


def violations(edges) -> list[str]:
    bad = []
    for source, target, where in edges:
        if target == "reasonlens":
            continue  # the package root only re-exports lazily
        a, b = room(source), room(target)
        if ORDER.index(b) > ORDER.index(a):
            bad.append(f"upward: {where} ({a}) imports {target} ({b})")
    pairs = {(s, t) for s, t, _ in edges if t != "reasonlens" and s != t}
    bad += [f"cycle: {a} and {b} import each other" for a, b in sorted(pairs) if (b, a) in pairs and a < b]
    return bad


def main() -> int:
    edges = imports()
    counts = Counter((room(s), room(t)) for s, t, _ in edges if t != "reasonlens" and room(s) != room(t))
    for source in ORDER:
        targets = [f"{t} ({counts[(source, t)]})" for t in ORDER if counts[(source, t)]]
        print(f"{source:>9} -> {', '.join(targets) or '-'}")
    bad = violations(edges)
    print("\n".join(bad) if bad else "no upward import, no cycle")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
