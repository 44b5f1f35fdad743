"""A Docker engine, a local base image and the ForestGate image, for `make docker-smoke`.

No container registry is reachable from these machines, so nothing is pulled. When no engine
answers, Debian's docker.io is installed and dockerd started with the vfs storage driver, no
iptables and no bridge: containers share the host's network. The base image is Debian bookworm
with python3 from debootstrap, brought in with `docker import`. Every image and container made
here is listed in a `Made` and removed by `Made.remove`; an engine started here is stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOCKET = Path("/var/run/docker.sock")
ENGINE_FLAGS = ("--storage-driver=vfs", "--iptables=false", "--bridge=none")
DEBIAN = "http://deb.debian.org/debian"
# The machine's own trust anchors go into the base image: where egress passes a TLS-inspecting
# proxy whose CA the host trusts, pip inside the build must trust it too.
LOCAL_ANCHORS = Path("/usr/local/share/ca-certificates")
TRUST = "/etc/ssl/certs/ca-certificates.crt"


class DockerUnavailable(Exception):
    """No engine answers and this user cannot install one; the message says why."""


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},  # the legacy builder: no buildx plugin here
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed:\n{done.stdout}\n{done.stderr}")
    return done


def answers() -> bool:
    try:
        return docker("info", timeout=20, check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def install_from_debian(*packages: str) -> None:
    commands = {"docker.io": "dockerd", "debootstrap": "debootstrap"}
    missing = [name for name in packages if shutil.which(commands[name]) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DockerUnavailable(
            f"{' and '.join(missing)} missing, and only root with apt-get installs them"
        )
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=True)
        subprocess.run(command, capture_output=True, check=True)


def start_engine(log: Path) -> subprocess.Popen[bytes] | None:
    """None when an engine already answers (it is left alone); else the dockerd started here."""
    install_from_debian("docker.io", "debootstrap")
    if answers():
        return None
    with log.open("wb") as sink:
        engine = subprocess.Popen(["dockerd", *ENGINE_FLAGS], stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not answers():
        if engine.poll() is not None or time.monotonic() > deadline:
            engine.kill()
            raise AssertionError(f"dockerd did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    return engine


def stop_engine(engine: subprocess.Popen[bytes] | None) -> None:
    if engine is not None:
        engine.terminate()
        engine.wait(timeout=60)


@dataclass
class Made:
    """Images, containers and volumes this run made, removed at the end whatever happened."""

    images: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def remove(self) -> None:
        for container in self.containers:
            docker("rm", "--force", "--volumes", container, check=False)
        for volume in self.volumes:
            docker("volume", "rm", "--force", volume, check=False)
        for image in reversed(self.images):
            docker("rmi", "--force", image, check=False)


def image_ids() -> set[str]:
    return set(docker("images", "--all", "--quiet", "--no-trunc").stdout.split())


def build_base(tag: str, root: Path, made: Made) -> None:
    """Debian bookworm with python3 and venv, as a local image (about 156 MB)."""
    debootstrap = [
        "debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
        "bookworm", str(root), DEBIAN,
    ]  # fmt: skip
    subprocess.run(debootstrap, capture_output=True, check=True, timeout=900)
    for anchor in LOCAL_ANCHORS.glob("*.crt"):
        shutil.copy(anchor, root / "usr/local/share/ca-certificates" / anchor.name)
    subprocess.run(["chroot", str(root), "update-ca-certificates"], capture_output=True, check=True)
    for bulk in ("usr/share/doc", "usr/share/man", "var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / bulk, ignore_errors=True)
    archive = root.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True, timeout=600)
    docker("import", "--change", f"ENV PIP_CERT={TRUST} SSL_CERT_FILE={TRUST}", str(archive), tag)
    archive.unlink()
    shutil.rmtree(root)  # the image holds it now; /tmp keeps pytest's last few runs
    made.images.append(tag)


def build_image(tag: str, base: str, made: Made, log: Path) -> None:
    """The repository's Dockerfile on `base`; the builder stage's image is removed with it."""
    before = image_ids()
    build = docker(
        "build", "--force-rm", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
        "--tag", tag, "--file", str(REPO / "Dockerfile"), str(REPO), timeout=1800, check=False,
    )  # fmt: skip
    log.write_text(build.stdout + build.stderr)
    made.images.extend(sorted(image_ids() - before))
    made.images.append(tag)
    assert build.returncode == 0, f"docker build failed, see {log}:\n{build.stderr[-3000:]}"


def copy_models(image: str, volume: str, init_command: list[str], user: str, made: Made) -> None:
    """The Kubernetes pod's recipe: an init container, as the server's user, copies the image's
    bundles into a fresh volume that the server then mounts read-only. chown plays the part of
    the pod's fsGroup, which makes the new volume writable to that user."""
    docker("volume", "create", volume)
    made.volumes.append(volume)
    mount = ("--volume", f"{volume}:/repository")
    as_root = ("--user", "0", "--entrypoint", "chown")
    docker("run", "--rm", *mount, *as_root, image, user, "/repository")
    docker(
        "run", "--rm", *mount, "--user", user, "--read-only", "--cap-drop", "ALL",
        "--entrypoint", init_command[0], image, *init_command[1:],
    )  # fmt: skip
