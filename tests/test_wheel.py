"""The built wheel works without a checkout: installed into a fresh venv outside the repository,
it finds its SQL views and queries and its default pipeline.yaml as data files, `elong --help`
runs and `dagster definitions validate` loads the code location.

The fresh venv takes the project's dependencies from this interpreter's site-packages (a
.pth line, which does not run the editable install's hook), so only the wheel's own files
decide what is found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]

pytestmark = pytest.mark.skipif(
    "data-files" not in _SETUPTOOLS,
    reason="sql/ and the default pipeline.yaml are not installed with the wheel")


def _run(argv: list[str], cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(python of a fresh venv with the wheel installed, its environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # the tracked files only, so the build cannot see local state
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], ROOT)
    for name in files.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(dist), str(source)], tmp)
    [wheel] = dist.glob("*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; "
                         "print(sysconfig.get_paths()['purelib'])"], tmp).strip())
    (purelib / "_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
          str(wheel)], tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("ELONG_CONFIG", "PYTHONPATH")}
    env |= {"DAGSTER_HOME": str(tmp / "dagster_home"), "HF_HUB_OFFLINE": "1"}
    (tmp / "dagster_home").mkdir()
    (tmp / "work").mkdir()
    return python, env


def test_the_wheel_carries_sql_and_the_default_config(installed):
    python, env = installed
    work = python.parents[2] / "work"
    out = _run([str(python), "-c", """
import lakehouse.catalog as catalog, orchestration.config as config
from orchestration.config import load_config
print(catalog.__file__)
print(len(list((catalog.SQL_DIR / "views").glob("*.sql"))))
print(len(list((catalog.SQL_DIR / "queries").glob("*.sql"))))
print(config.DEFAULT_CONFIG)
print(load_config().lake)
"""], work, env)
    module, views, queries, default, lake = out.split("\n")[:5]
    venv = str(python.parents[1])
    assert module.startswith(venv), "imported from the wheel, not the checkout"
    assert int(views) == len(list((ROOT / _sql_dir() / "views").glob("*.sql"))) > 0
    assert int(queries) == len(list((ROOT / _sql_dir() / "queries").glob("*.sql"))) > 0
    assert default.startswith(venv) and Path(default).is_file()
    assert not lake.startswith(venv), "the default lake is not inside the installation"


def _sql_dir() -> Path:
    return Path("lakehouse/sql") if (ROOT / "lakehouse/sql").is_dir() else Path("sql")


def test_elong_and_dagster_run_from_the_installed_wheel(installed):
    python, env = installed
    work = python.parents[2] / "work"
    assert "usage" in _run([str(python.parent / "elong"), "--help"], work, env).lower()
    _run([str(python), "-m", "dagster", "definitions", "validate", "-m",
          "orchestration.definitions"], work, env)
