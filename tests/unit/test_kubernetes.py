"""deploy/kubernetes, checked offline: every manifest against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors), and the shards' wiring against the
program (the shard index each pod gets, the count, the probes on the image's health port)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from supervisor.config import Config, Shard

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
SHARDS = KUBERNETES / "shards"
VERSION = "1.30.0"
"""The oldest Kubernetes the manifests are for (backoffLimitPerIndex is beta from 1.29)."""
HEALTH_PORT = 9464
"""The Dockerfile's HEALTH_PORT."""


def documents(folder: Path) -> dict[str, dict[str, Any]]:
    """The manifests of `folder` (not below it) by kind, one of each."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                assert document["kind"] not in found, path
                found[document["kind"]] = document
    return found


MANIFESTS = sorted(p for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(KUBERNETES)))
@pytest.mark.parametrize("version", [VERSION, kubernetes_validate.latest_version()])
def test_every_manifest_matches_the_kubernetes_schemas_strictly(path: Path, version: str) -> None:
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_catches_a_misplaced_field() -> None:
    statefulset = copy.deepcopy(documents(SHARDS)["StatefulSet"])
    statefulset["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSION, strict=True)


def test_the_shards_kustomization_lists_its_manifests_but_the_job() -> None:
    listed = documents(SHARDS)["Kustomization"]["resources"]
    others = {p.name for p in SHARDS.glob("*.yaml")} - {"kustomization.yaml", "job.yaml"}
    assert sorted(listed) == sorted(others)


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def shard_config(tmp_path: Path, env: dict[str, str]) -> Config:
    text = documents(SHARDS)["ConfigMap"]["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return Config.from_yaml(path, {"KEY": "k", "SECRET": "s", **env})


def test_a_statefulset_pod_is_the_shard_of_its_ordinal(tmp_path: Path) -> None:
    kinds = documents(SHARDS)
    statefulset = kinds["StatefulSet"]
    spec = statefulset["spec"]
    container = container_of(statefulset)
    env = plain_env(container)
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "fieldRef" in e.get("valueFrom", {})
    }

    assert int(env["SHARD_COUNT"]) == spec["replicas"]
    assert fields == {"POD_NAME": "metadata.name"}
    assert spec["serviceName"] == kinds["Service"]["metadata"]["name"]
    assert kinds["Service"]["spec"]["clusterIP"] == "None"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert kinds["Service"]["spec"]["selector"] == spec["selector"]["matchLabels"]
    for ordinal in range(spec["replicas"]):
        pod_name = f"{statefulset['metadata']['name']}-{ordinal}"
        config = shard_config(tmp_path, {**env, "POD_NAME": pod_name})
        assert config.shard.split == Shard(ordinal, spec["replicas"])
    check_pod(container, statefulset, kinds["ConfigMap"])


def test_an_indexed_job_pod_is_the_shard_of_its_completion_index(tmp_path: Path) -> None:
    kinds = documents(SHARDS)
    job = kinds["Job"]
    spec = job["spec"]
    container = container_of(job)
    env = plain_env(container)

    assert spec["completionMode"] == "Indexed"
    assert int(env["SHARD_COUNT"]) == spec["completions"] == spec["parallelism"]
    assert "--max-messages" in container["args"]  # a bounded run
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    for index in range(spec["completions"]):
        config = shard_config(tmp_path, {**env, "JOB_COMPLETION_INDEX": str(index)})
        assert config.shard.split == Shard(index, spec["completions"])
    check_pod(container, job, kinds["ConfigMap"])


def check_pod(
    container: dict[str, Any], workload: dict[str, Any], configmap: dict[str, Any]
) -> None:
    pod = workload["spec"]["template"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        if probe in container:
            assert ports[container[probe]["httpGet"]["port"]] == HEALTH_PORT
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][:3] == ["run", "--config", "/app/conf/config.yaml"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/app/conf")
    assert "subPath" not in mount  # a subPath mount never sees the ConfigMap change
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    shutdown = yaml.safe_load(configmap["data"]["config.yaml"])["shutdown_timeout_s"]
    assert pod["terminationGracePeriodSeconds"] > shutdown
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
