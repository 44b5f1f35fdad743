"""The Dockerfile read as Docker reads it (dockerfile-parse), without Docker: its ports, variables
and health check agree with the server's settings, the runtime stage holds no compiler, and
`make docker-smoke` (tests/deploy/test_docker_smoke.py) builds this same file."""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

from forestgate.cli import build_parser
from forestgate.clients import health
from tests.deploy import docker
from tests.deploy import test_docker_smoke as smoke
from tests.deploy.serve import served

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    return [item for item in parser.structure if item["instruction"] != "COMMENT"]


def stages() -> dict[str, list[dict[str, Any]]]:
    """stage name -> its instructions, in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for item in instructions():
        if item["instruction"] == "FROM":
            current = found.setdefault(item["value"].split(" AS ")[-1], [])
        current.append(item)
    return found


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == instruction]


def runtime_environment() -> dict[str, str]:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    return dict(parser.envs)  # the last stage's, as the container sees them


def test_both_stages_start_from_the_base_argument_defaulting_to_the_projects_python():
    (argument,) = [item["value"] for item in instructions()[:1] if item["instruction"] == "ARG"]
    name, default = argument.split("=", 1)
    assert name == "BASE_IMAGE"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    oldest = re.match(r">=(\d+\.\d+)", requires)
    assert oldest and default == f"python:{oldest[1]}-slim-bookworm"
    assert f"PYTHON ?= python{oldest[1]}" in (REPO / "Makefile").read_text()
    assert list(stages()) == ["builder", "runtime"]
    for stage in stages().values():
        assert stage[0]["value"].startswith("${BASE_IMAGE} AS ")


def test_the_runtime_stage_holds_no_compiler_and_only_what_the_builder_installed_for_serving():
    builder, runtime = stages()["builder"], stages()["runtime"]
    assert any("gcc" in run for run in values(builder, "RUN"))
    assert not any("apt-get" in run or "pip" in run for run in values(runtime, "RUN"))
    copies = values(runtime, "COPY")
    assert copies == [
        "--from=builder /opt/forestgate /opt/forestgate",
        "--from=builder /models /models",
    ]
    (install,) = values(builder, "RUN")[1:]
    # The runtime's environment is the core install: no extra, so no treelite, SciPy or training.
    assert "/opt/forestgate/bin/pip install --quiet .;" in install


def test_ports_variables_and_health_check_agree_with_the_servers_settings():
    runtime = stages()["runtime"]
    environ = runtime_environment()
    (command,) = values(runtime, "CMD")
    (entrypoint,) = values(runtime, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["forestgate"]  # exec form: the server is PID 1
    settings = served(json.loads(command), environ)
    assert settings.host == "0.0.0.0"
    assert str(settings.model_repository) == "/models"
    (exposed,) = values(runtime, "EXPOSE")
    assert sorted(int(port) for port in exposed.split()) == sorted(
        [settings.port, settings.metrics_port]
    )

    (check,) = values(runtime, "HEALTHCHECK")
    probe = json.loads(check.split("CMD", 1)[1])
    assert probe[0] == "forestgate"
    args = build_parser().parse_args(probe[1:])
    assert args.run is health.run_health
    args_port = health.port(args, environ)
    assert args_port == settings.port  # the check follows FORESTGATE_PORT
    assert values(runtime, "STOPSIGNAL") == ["SIGTERM"]


def test_the_server_runs_as_a_numeric_non_root_user():
    (user,) = values(stages()["runtime"], "USER")
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0 and gid != 0  # numeric, so Kubernetes can check runAsNonRoot
    assert any(f"--uid {uid}" in run for run in values(stages()["runtime"], "RUN"))


def test_the_build_context_leaves_out_environments_data_and_reports():
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }  # fmt: skip
    assert {".venv", "data", "reports", ".git"} <= ignored
    assert "models" not in ignored  # MODEL_REPOSITORY may name a repository in the context


def test_make_docker_smoke_builds_this_dockerfile_with_its_base_argument():
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^docker-smoke:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target, "Makefile has no docker-smoke target"
    assert "tests/deploy/test_docker_smoke.py" in target[1]
    build = inspect.getsource(docker.build_image)
    assert 'REPO / "Dockerfile"' in build and 'f"BASE_IMAGE={base}"' in build
    (user,) = values(stages()["runtime"], "USER")
    assert user == smoke.USER  # what the smoke test expects of the image it runs
