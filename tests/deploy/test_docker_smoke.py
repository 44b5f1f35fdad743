"""`make docker-smoke`: the repository's Dockerfile built on a local Debian base and run, then
used from outside the container as an SRE would: Docker's own health check, grpc.health.v1, a
tritonclient inference, the README's Score example, /metrics, spans at an OTLP receiver outside
the container, and a SIGTERM drain that exits 0. The container runs as the Kubernetes pod of
deploy/k8s/base does: its settings, its init container's copy of the bundles into a read-only
volume, a read-only root filesystem with a tmpfs on /tmp, the numeric user, no capabilities.

Needs root (it installs Debian's docker.io and debootstrap and starts dockerd when no engine
answers); without root the module skips and says so. See tests/deploy/docker.py.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy import docker as d
from tests.otlp import Span, TraceReceiver

# Building takes minutes (debootstrap, the training stack, the demo models); the default 600 s
# per test would count it against whichever test sets the image up.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

REPO = d.REPO
IMAGE = "forestgate-smoke:test"
BASE = "forestgate-smoke-base:bookworm"
DEPLOYMENT = REPO / "deploy" / "k8s" / "base" / "deployment.yaml"
SETTINGS = REPO / "deploy" / "k8s" / "base" / "settings.env"
USER = "10001:10001"


def pod() -> dict[str, Any]:
    """The Kubernetes Deployment's pod spec and its settings, which the container reproduces."""
    spec: dict[str, Any] = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    lines = SETTINGS.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {"spec": spec, "settings": dict(pairs)}


POD = pod()
WORKERS = int(POD["settings"]["FORESTGATE_WORKERS"])
GRACE_S = float(POD["settings"]["FORESTGATE_GRACE_PERIOD_S"])
# Docker kills the container this long after SIGTERM: the server's grace, so an exit code of 0
# (not 137) means the server drained and left within it.
KILL_AFTER_S = math.ceil(GRACE_S)


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (worker i serves metrics on port + i)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count < 65536 and all(free(first + i) for i in range(1, count)):
            return first


def free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, d.Made]]:
    work = tmp_path_factory.mktemp("docker")
    try:
        engine = d.start_engine(work / "dockerd.log")
    except d.DockerUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}; run `make docker-smoke` as root")
    made = d.Made()
    try:
        d.build_base(BASE, work / "rootfs", made)
        d.build_image(IMAGE, BASE, made, work / "build.log")
        yield IMAGE, made
    finally:
        made.remove()
        d.stop_engine(engine)


@pytest.fixture(scope="module")
def image(built: tuple[str, d.Made]) -> str:
    return built[0]


@dataclass
class Running:
    name: str
    port: int
    metrics_port: int
    receiver: TraceReceiver

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def state(self) -> dict[str, object]:
        inspected = json.loads(d.docker("inspect", self.name).stdout)
        state: dict[str, object] = inspected[0]["State"]
        return state

    def logs(self) -> str:
        done = d.docker("logs", self.name, check=False)
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def container(built: tuple[str, d.Made]) -> Iterator[Running]:
    """The image run as the Kubernetes pod runs it: the base settings.env (2 workers), bundles
    copied by the init container into a read-only volume, a read-only root with a tmpfs on
    /tmp, the numeric user, no capabilities. Only the ports and the tracing variables differ."""
    image, made = built
    receiver = TraceReceiver()
    otlp_port = receiver.start_grpc()
    metrics_port = free_ports(WORKERS)
    running = Running(f"forestgate-smoke-{metrics_port}", free_ports(1), metrics_port, receiver)
    (init,) = POD["spec"]["initContainers"]
    volume = f"{running.name}-models"
    d.copy_models(image, volume, init["command"], USER, made)
    environment = {
        **POD["settings"],
        "FORESTGATE_PORT": running.port,
        "FORESTGATE_METRICS_PORT": running.metrics_port,
        "OTEL_SERVICE_NAME": "forestgate-smoke",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": 200,
    }
    flags = [arg for key, value in environment.items() for arg in ("--env", f"{key}={value}")]
    d.docker(
        "run", "--detach", "--name", running.name, "--network", "host", "--read-only",
        "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--volume", f"{volume}:/models:ro", "--stop-timeout", str(KILL_AFTER_S), *flags, image,
    )  # fmt: skip
    made.containers.append(running.name)
    try:
        wait_until_healthy(running)
        yield running
    finally:
        print(running.logs()[-4000:], file=sys.stderr)
        receiver.stop()


def wait_until_healthy(running: Running, within_s: float = 120) -> None:
    """Docker's own HEALTHCHECK (`forestgate health` inside the container) says healthy."""
    deadline = time.monotonic() + within_s
    while True:
        state = running.state()
        health = state.get("Health") or {}
        if health.get("Status") == "healthy":  # type: ignore[union-attr]
            return
        assert state["Running"], f"container exited: {running.logs()[-3000:]}"
        assert time.monotonic() < deadline, f"not healthy: {health}\n{running.logs()[-3000:]}"
        time.sleep(1)


def test_the_runtime_image_holds_no_compiler_and_no_training_stack(image: str) -> None:
    probe = (
        "import importlib.util, shutil; "
        "print(*[m for m in ('treelite', 'tl2cgen', 'scipy', 'xgboost', 'lightgbm', 'sklearn',"
        " 'duckdb') if importlib.util.find_spec(m)], shutil.which('gcc'), shutil.which('cc'))"
    )
    done = d.docker("run", "--rm", "--entrypoint", "python3", image, "-c", probe)
    assert done.stdout.split() == ["None", "None"]
    config = json.loads(d.docker("image", "inspect", image).stdout)[0]
    assert config["Config"]["User"] == USER
    size_mb = config["Size"] / 1e6
    print(f"image {image}: {size_mb:.0f} MB")  # reported in docs/deploy.md
    listing = d.docker("run", "--rm", "--entrypoint", "ls", image, "/models").stdout.split()
    assert sorted(listing) == ["approval", "retry"]  # the demo bundles, trained in the builder


def test_health_is_serving_from_outside(container: Running) -> None:
    with grpc.insecure_channel(container.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "approval", "retry"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def infer_with_tritonclient(container: Running) -> None:
    """Two rows of zeros to the approval model, as a Triton user would send them."""
    client = triton.InferenceServerClient(container.target)
    metadata = client.get_model_metadata("approval")
    (declared,) = metadata.inputs
    rows = np.zeros((2, int(declared.shape[-1])), dtype=np.float32)
    given = triton.InferInput(declared.name, list(rows.shape), declared.datatype)
    given.set_data_from_numpy(rows)
    result = client.infer("approval", [given])
    scores = result.as_numpy(metadata.outputs[0].name)
    assert scores.shape[0] == 2 and np.all((scores >= 0) & (scores <= 1))
    client.close()


def test_a_tritonclient_inference(container: Running) -> None:
    infer_with_tritonclient(container)


def test_the_readmes_score_example(container: Running) -> None:
    example = REPO / "docs" / "examples" / "score.py"
    done = subprocess.run(
        [sys.executable, str(example), container.target],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fallback: False" in done.stdout
    assert "outcome recorded: True" in done.stdout


def test_every_workers_metrics_endpoint(container: Running) -> None:
    for worker in range(WORKERS):
        url = f"http://127.0.0.1:{container.metrics_port + worker}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        assert 'forestgate_model_loaded{model="approval",version="1"} 1.0' in text, worker


def test_spans_reach_a_receiver_outside_the_container(container: Running) -> None:
    def inferred(spans: list[Span]) -> bool:
        return any(span.name.endswith("ModelInfer") for span in spans)

    infer_with_tritonclient(container)
    spans = container.receiver.wait_for(inferred)
    served = next(span for span in spans if span.name.endswith("ModelInfer"))
    assert served.kind == "SERVER"
    assert served.resource.get("service.name") == "forestgate-smoke"


def test_sigterm_drains_and_exits_zero_within_the_grace_period(container: Running) -> None:
    # `docker stop` sends STOPSIGNAL (SIGTERM) and kills after --time seconds.
    d.docker("stop", "--time", str(KILL_AFTER_S), container.name, timeout=KILL_AFTER_S + 30)
    state = container.state()
    assert state["ExitCode"] == 0, container.logs()[-3000:]
    assert not state["OOMKilled"]
    assert container.logs().count("stopped cleanly") == WORKERS
