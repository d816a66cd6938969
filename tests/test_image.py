"""The container images (k8s/Dockerfile, k8s/Dockerfile.gpu) carry what the Helm values and
the project use: Dagster's Postgres storage and its driver, the Kubernetes launcher, the
object-store filesystem, the pinned torch, the `mds` extra in the GPU image; and the build
context leaves local state out (.dockerignore)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {"cpu": ROOT / "k8s/Dockerfile", "gpu": ROOT / "k8s/Dockerfile.gpu"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _pip_installs(path: Path) -> list[tuple[set[str], dict[str, str], list[str]]]:
    """Each ``pip install`` of the RUN lines: its flags, name -> pinned version, and targets."""
    installs = []
    for word, args in _instructions(path):
        if word != "RUN":
            continue
        for command in args.split("&&"):
            tokens = shlex.split(command)
            if tokens[:2] != ["pip", "install"]:
                continue
            flags, pins, targets = set(), {}, []
            skip = False
            for token in tokens[2:]:
                if skip:
                    skip = False
                elif token in ("--index-url", "--extra-index-url", "-c", "-r"):
                    skip = True
                    flags.add(token)
                elif token.startswith("-"):
                    flags.add(token)
                elif "==" in token:
                    name, version = token.split("==", 1)
                    pins[_norm(name)] = version
                else:
                    targets.append(token)
            installs.append((flags, pins, targets))
    return installs


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_pins(extra: str | None = None) -> dict[str, str]:
    project = _pyproject()["project"]
    deps = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {_norm(d.split("==")[0]): d.split("==")[1].split(";")[0].strip()
            for d in deps if "==" in d}


def _image_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for _, found, _ in _pip_installs(path):
        pins.update(found)
    return pins


def _installs_project(path: Path) -> bool:
    return any("." in targets for _, _, targets in _pip_installs(path))


def _values() -> dict:
    return yaml.safe_load((ROOT / "k8s/values.yaml").read_text())


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_installs_the_project_and_what_the_values_need(image):
    path = IMAGES[image]
    values = _values()
    pins = {**_pyproject_pins(), **_image_pins(path)}  # what ends up in the image
    assert _installs_project(path), "the image installs the project itself"
    copies = [args for word, args in _instructions(path) if word == "COPY"]
    assert ". ." in copies, "the source tree is copied (filtered by .dockerignore)"

    # run, event and schedule storage in Postgres -> dagster-postgres, versioned with Dagster's
    # other integrations, and the driver the values' scheme names
    postgres = values["postgresql"]
    assert postgres["enabled"] or postgres.get("postgresqlHost")
    assert pins["dagster-postgres"] == _pyproject_pins()["dagster-k8s"]
    scheme = postgres["postgresqlScheme"]
    driver = scheme.split("+", 1)[1]
    assert driver == "psycopg2"
    requires = {_norm(r.split(">")[0].split("<")[0].split("=")[0].split(";")[0])
                for r in metadata.requires("dagster-postgres")}
    assert "psycopg2-binary" in requires  # dagster-postgres brings psycopg2, not psycopg 3
    import sqlalchemy

    sqlalchemy.create_engine(f"{scheme}://u@localhost/d")  # the dialect loads (no connection)

    # K8sRunLauncher and the k8s_job_executor
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "dagster-k8s" in pins
    # the lake and corpora on S3: credentials from the secret, read through s3fs
    secrets = {s["name"] for s in values["dagster-user-deployments"]["deployments"][0]
               ["envSecrets"]}
    assert "lake-credentials" in secrets and "s3fs" in pins
    assert pins["s3fs"] == pins["fsspec"]  # s3fs is released in step with fsspec
    # the torch the project is pinned to (CPU build in the CPU image, CUDA in the GPU one)
    assert pins["torch"] == _pyproject_pins()["torch"]


def test_image_pins_agree_with_the_project():
    project = {**_pyproject_pins(), **_pyproject_pins("mds"), **_pyproject_pins("dev")}
    for image, path in IMAGES.items():
        for name, version in _image_pins(path).items():
            if name in project:
                assert version == project[name], (image, name)
            else:  # not (yet) a project dependency: then the one installed here
                try:
                    installed = metadata.version(name)
                except metadata.PackageNotFoundError:
                    continue  # GPU-only packages (torchvision, the MDS import deps)
                assert version == installed, (image, name, installed)


def test_gpu_image_has_the_mds_extra_without_its_dependency_pins():
    installs = _pip_installs(IMAGES["gpu"])
    mds = _pyproject_pins("mds")["mosaicml-streaming"]
    [streaming] = [(flags, pins) for flags, pins, _ in installs if "mosaicml-streaming" in pins]
    assert streaming[1]["mosaicml-streaming"] == mds and "--no-deps" in streaming[0]
    gpu_pins = _image_pins(IMAGES["gpu"])
    assert "torchvision" in gpu_pins  # streaming imports it; the CUDA build beside CUDA torch
    cpu_installs = _pip_installs(IMAGES["cpu"])
    assert all("mosaicml-streaming" not in pins for _, pins, _ in cpu_installs)
    [torch] = [flags for flags, pins, _ in cpu_installs if "torch" in pins]
    assert "--index-url" in torch  # the CPU image takes the CPU build of torch
    from_lines = {image: [a for w, a in _instructions(p) if w == "FROM"]
                  for image, p in IMAGES.items()}
    assert "cuda" in from_lines["gpu"][0] and "cuda" not in from_lines["cpu"][0]


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text()
               .splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv", ".cache", "lake", "data", ".dagster", "bench/results", ".git"} <= ignored
    needed = ["pyproject.toml", "README.md", "orchestration", "assets", "models", "lakehouse",
              "sql", "pipeline.yaml", "dagster.yaml"]
    assert not [n for n in needed if n in ignored]


def test_a_step_can_run_the_gpu_image_through_its_op_tags():
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from kubernetes.client import ApiClient

    cpu, gpu = "ghcr.io/example/entropylong:1", "ghcr.io/example/entropylong-gpu:1"
    tags = {"dagster-k8s/config": json.dumps({"container_config": {  # as Dagster stores tags
        "image": gpu, "resources": {"limits": {"nvidia.com/gpu": 1}}}})}
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(job_image=cpu, dagster_home="/opt/dagster/dagster_home",
                                       instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"], job_name="step", pod_name="step",
        component="step_worker", user_defined_k8s_config=get_user_defined_k8s_config(tags))
    container = ApiClient().sanitize_for_serialization(job)["spec"]["template"]["spec"][
        "containers"][0]
    assert container["image"] == gpu
