"""The `pystdlib` demo corpus: real English prose nobody wrote for this project.

One document per module of the running Python's standard library: the module docstring
followed by the docstrings of its public classes and functions, read with ``ast`` (no module
is imported, so nothing is executed). Deterministic for a given Python build.
"""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

SKIP_TOP = {"test", "idlelib", "lib2to3", "site-packages", "dist-packages", "__pycache__",
            "turtledemo", "ensurepip", "venv", "pydoc_data", "config-3.11-x86_64-linux-gnu"}


def _module_files(stdlib: Path) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if rel.parts[0] in SKIP_TOP or any(p.startswith(("_", "test")) and p != "__init__.py"
                                           for p in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found.append((".".join(parts), path))
    return found


def _document(module: str, source: str, max_chars: int) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    head = ast.get_docstring(tree)
    if not head or len(head) < 200:
        return None
    blocks = [f"The {module} module.\n\n{head.strip()}"]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc:
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                blocks.append(f"The {kind} {node.name}: {doc.strip()}")
    text = ""
    for block in blocks:  # whole blocks only, so no document ends mid-sentence
        if len(text) + len(block) + 2 > max_chars:
            break
        text = f"{text}\n\n{block}" if text else block
    return text or blocks[0][:max_chars]


def generate(n_docs: int = 40, max_chars: int = 6000,
             stdlib: str | None = None) -> list[dict]:
    """Up to ``n_docs`` documents ``{"id", "text"}``, in module-name order."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    docs = []
    for module, path in _module_files(root):
        text = _document(module, path.read_text(encoding="utf-8", errors="replace"), max_chars)
        if text:
            docs.append({"id": f"python-stdlib:{module}", "text": text})
        if len(docs) >= n_docs:
            break
    return docs
