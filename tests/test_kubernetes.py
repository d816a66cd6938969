"""Every asset's step Job, as dagster-k8s would launch it, is a valid Kubernetes 1.30 Job;
GPU steps ask for a GPU on a GPU node, CPU steps do not."""

from __future__ import annotations

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_k8s_job_name,
    get_user_defined_k8s_config,
)
from kubernetes.client import ApiClient

from orchestration.config import KubernetesSettings, load_config
from orchestration.definitions import build_definitions
from orchestration.k8s import executor, op_tags

defs = build_definitions()

GPU_ASSETS = {"entropy_profiles", "verified_dependencies", "token_weights", "distance_check",
              "trained_model", "evaluation"}
IMAGE = "ghcr.io/example/entropylong:0.1.0"


def _assets() -> list[dg.AssetsDefinition]:
    return [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]


def _step_job(asset: dg.AssetsDefinition) -> dict:
    """The V1Job that k8s_job_executor builds for this asset's step, as a plain dict."""
    step_key = asset.op.name
    job_config = DagsterK8sJobConfig(
        job_image=IMAGE, dagster_home="/opt/dagster/dagster_home",
        image_pull_policy="IfNotPresent", instance_config_map="dagster-instance",
        postgres_password_secret="dagster-postgresql-secret",
        env_secrets=["lake-credentials"])
    run_id = "0d9c4f1e-5b7a-4c1e-9f59-3f1a2b3c4d5e"
    name = f"dagster-step-{get_k8s_job_name(run_id, step_key)}"
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step", "--run-id", run_id, "--step-key", step_key],
        job_name=name, pod_name=name, component="step_worker",
        user_defined_k8s_config=get_user_defined_k8s_config(asset.op.tags),
        labels={"dagster/job": "__ASSET_JOB", "dagster/op": step_key, "dagster/run-id": run_id},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step_key}])
    return ApiClient().sanitize_for_serialization(job)


@pytest.mark.parametrize("asset", _assets(), ids=lambda a: a.op.name)
def test_step_job_validates_and_asks_for_a_gpu_only_on_gpu_steps(asset):
    job = _step_job(asset)
    kubernetes_validate.validate(job, "1.30", strict=True)
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    if asset.op.name in GPU_ASSETS:
        assert str(limits["nvidia.com/gpu"]) == "1"
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert pod["metadata"]["annotations"][
            "cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    else:
        assert "nvidia.com/gpu" not in limits and "nvidia.com/gpu" not in requests
        assert requests["cpu"] and "nodeSelector" not in pod["spec"]
    assert container["image"] == IMAGE


def test_pod_settings_come_from_the_configuration():
    settings = KubernetesSettings(gpu={"resources": {"limits": {"nvidia.com/gpu": 4}},
                                       "node_selector": {"pool": "h100"}})
    cfg = op_tags("gpu", settings)["dagster-k8s/config"]
    assert cfg["container_config"]["resources"] == {"limits": {"nvidia.com/gpu": 4}}
    assert cfg["pod_spec_config"] == {"node_selector": {"pool": "h100"}}
    assert "pod_template_spec_metadata" not in cfg  # nothing asked for, nothing added


def test_executor_switches_to_k8s_jobs_by_configuration():
    assert executor(KubernetesSettings()) is dg.multiprocess_executor
    k8s = executor(KubernetesSettings(enabled=True, namespace="ml", image=IMAGE,
                                      max_concurrent=4))
    assert k8s.name == "k8s_step_executor"
    assert defs.executor is dg.multiprocess_executor or defs.executor.name == "multiprocess"
    assert load_config().kubernetes.enabled is False  # the embedded default runs locally


def test_helm_values_parse_and_carry_image_executor_and_instance_settings():
    from pathlib import Path

    values = yaml.safe_load((Path(__file__).parents[1] / "k8s/values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["image"]["repository"] and deployment["image"]["tag"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["ELONG_CONFIG"].endswith(".yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is True
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    assert values["concurrency"]["pools"]["defaultLimit"] == 1
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] > 0
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert any(env["ELONG_CONFIG"].startswith(m) for m in mounts)


def test_the_training_pod_asks_for_one_gpu_per_training_process():
    settings = KubernetesSettings()
    train = op_tags("train", settings, processes=4)["dagster-k8s/config"]
    assert train["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert train["pod_spec_config"]["node_selector"] == {"nvidia.com/gpu.present": "true"}
    # processes None: the pod's configured count, which the trainer then fills
    assert op_tags("train", settings)["dagster-k8s/config"]["container_config"][
        "resources"]["limits"]["nvidia.com/gpu"] == 1
    # other GPU steps keep one GPU
    assert op_tags("gpu", settings, processes=4)["dagster-k8s/config"]["container_config"][
        "resources"]["limits"]["nvidia.com/gpu"] == 1
