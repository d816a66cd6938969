"""Kubernetes placement from configuration: op tags per step kind, and the executor.

GPU steps get ``dagster-k8s/config`` tags that ask for ``nvidia.com/gpu``, land on GPU nodes
(node selector, tolerations) and tell the cluster autoscaler not to evict them; the training
step (``train``) gets the same pod with one GPU per training process (``training.processes``,
models.settings.pod_gpus); CPU steps ask for CPU and memory only. The tags are read by
dagster-k8s's ``k8s_job_executor`` when it launches a step's Job; locally they are inert.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg

from models.settings import pod_gpus
from orchestration.config import KubernetesSettings, PodSettings

StepKind = Literal["gpu", "train", "cpu"]
GPU = "nvidia.com/gpu"


def _pod_tags(pod: PodSettings) -> dict:
    config: dict = {"container_config": {"resources": pod.resources}}
    pod_spec: dict = {}
    if pod.node_selector:
        pod_spec["node_selector"] = pod.node_selector
    if pod.tolerations:
        pod_spec["tolerations"] = pod.tolerations
    if pod_spec:
        config["pod_spec_config"] = pod_spec
    if pod.annotations:
        config["pod_template_spec_metadata"] = {"annotations": pod.annotations}
    return config


def _with_gpus(pod: PodSettings, gpus: int) -> PodSettings:
    """The pod asking for ``gpus`` GPUs wherever it asks for any (limits, requests)."""
    resources = {part: {**values, GPU: gpus} if GPU in values or part == "limits" else values
                 for part, values in {"limits": {}, **pod.resources}.items()}
    return pod.model_copy(update={"resources": resources})


def op_tags(kind: StepKind, settings: KubernetesSettings, processes: int | None = None
            ) -> dict:
    """``{"dagster-k8s/config": ...}`` for a step of this kind, from the configuration the
    Definitions are built with (when the code location loads, never at import);
    ``processes``: the training step's processes (``training.processes``)."""
    pod = settings.cpu if kind == "cpu" else settings.gpu
    if kind == "train":
        configured = pod.resources.get("limits", {}).get(GPU, 1)
        pod = _with_gpus(pod, pod_gpus(processes, int(configured)))
    return {"dagster-k8s/config": _pod_tags(pod)}


def executor(settings: KubernetesSettings) -> dg.ExecutorDefinition:
    """k8s_job_executor (one pod per step) when enabled, else Dagster's multiprocess one."""
    if not settings.enabled:
        return dg.multiprocess_executor
    from dagster_k8s import k8s_job_executor

    config: dict = {"job_namespace": settings.namespace,
                    "image_pull_policy": settings.image_pull_policy,
                    "max_concurrent": settings.max_concurrent,
                    "env_secrets": settings.env_secrets}
    if settings.image:
        config["job_image"] = settings.image
    if settings.service_account_name:
        config["service_account_name"] = settings.service_account_name
    return k8s_job_executor.configured(config, name="k8s_step_executor")
