"""deploy/docker-compose.yml, checked without Docker (no registry reaches these machines): the
Compose specification's schema, through check-jsonschema, and the server's own settings parser
reading the service's command and environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from forestgate.server.settings import Settings
from forestgate.server.tracing.config import trace_config
from tests.deploy.serve import served

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "docker-compose.yml"
CHECK = str(Path(sys.executable).with_name("check-jsonschema"))


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, from the short "host:container" syntax."""
    pairs = (str(entry).split(":") for entry in service["ports"])
    return {int(container): int(host) for host, container in pairs}


def test_the_compose_file_follows_the_compose_specification(tmp_path):
    done = validate(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = compose()
    broken["services"]["jaeger"]["ports"] = {"ui": 16686}  # ports must be a list
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert validate(tmp_path / "broken.yml").returncode != 0  # the validator does reject


def service_settings(server: dict[str, Any]) -> tuple[Settings, dict[str, str]]:
    """The settings the service's command and environment give the server, and that environment."""
    environ = {key: str(value) for key, value in server["environment"].items()}
    return served(server["command"], environ), environ


def test_forestgate_parses_its_command_and_exports_to_jaeger():
    services = compose()["services"]
    server, jaeger = services["forestgate"], services["jaeger"]
    settings, environ = service_settings(server)
    assert settings.host == "0.0.0.0"
    assert published(server) == {settings.port: settings.port, settings.metrics_port: 9090}
    assert settings.trace_slow_us == 2000
    config = trace_config(settings, environ)
    assert config.enabled and config.protocol == "grpc"
    assert "parentbased_traceidratio 0.01" in config.why
    endpoint = urlsplit(environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (endpoint.scheme, endpoint.hostname) == ("http", "jaeger")  # plaintext, by service
    assert endpoint.port in published(jaeger)
    assert f"receivers.otlp.protocols.grpc.endpoint=0.0.0.0:{endpoint.port}" in " ".join(
        jaeger["command"]
    )
    assert 16686 in published(jaeger)  # the UI
    assert "jaeger" in server["depends_on"]


def test_prometheus_scrapes_forestgate_and_loads_the_alerts():
    services = compose()["services"]
    settings, _ = service_settings(services["forestgate"])
    prometheus = services["prometheus"]
    (mount,) = prometheus["volumes"]
    source, target, mode = mount.split(":")
    assert (COMPOSE.parent / source).resolve() == REPO / "deploy" / "prometheus" and mode == "ro"
    assert f"--config.file={target}/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (targets,) = (static["targets"] for static in jobs["forestgate"]["static_configs"])
    assert targets == [f"forestgate:{settings.metrics_port}"]  # the service, its metrics port
    assert settings.workers == 1  # worker i serves port + i: one target per worker
    assert "forestgate" in prometheus["depends_on"]
    assert 9090 in published(prometheus)
