"""Where the project's own files are: in a checkout, or installed from the wheel.

A checkout has ``sql/`` and ``pipeline.yaml`` beside the packages. The wheel installs the same
files as data files under ``<prefix>/share/entropylong/`` (pyproject ``data-files``), since the
top-level folders stay where they are. Everything that reads one of them asks here.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
INSTALLED = Path(sys.prefix) / "share" / "entropylong"


def in_checkout() -> bool:
    """Whether the packages run from a source checkout (their folder holds pipeline.yaml)."""
    return (CHECKOUT / "pipeline.yaml").is_file()


def project_file(relative: str) -> Path:
    """``relative`` (``sql``, ``pipeline.yaml``) in the checkout, else in the installation."""
    return CHECKOUT / relative if in_checkout() else INSTALLED / relative


def is_installed_file(path: Path) -> bool:
    """Whether ``path`` lies in the installation's data files (not a user's own file)."""
    try:
        path.resolve().relative_to(INSTALLED.resolve())
    except ValueError:
        return False
    return not in_checkout()

