"""The model repository: which bundle versions are loaded, and swapping them without failures.

A Triton-style directory, `<root>/<name>/<version>/manifest.json`. Every valid version is loaded
at start; a bundle that fails its checks is reported and skipped, never stopping the others.
A (re)load opens and self-checks the new version, starts its batcher, and only then swaps it in;
the replaced version's batcher drains what it already accepted. Requests name a version or get
the latest (numeric versions compare as numbers, as in Triton).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from forestgate.engine.manifest import MANIFEST_FILE
from forestgate.engine.model import CompiledModel
from forestgate.errors import BundleError, ForestGateError, NotFound
from forestgate.server.batcher import RejectReason

log = logging.getLogger(__name__)


class Batcher(Protocol):
    """What the repository needs of a batcher (server/batcher.py provides it)."""

    async def submit(
        self, rows: npt.NDArray[np.float32], deadline_ns: int | None = None, context: object = None
    ) -> npt.NDArray[np.float32]: ...

    async def drain(self) -> None: ...

    # What Triton's ModelConfig reports, and the core's refusals counted with the batcher's.
    @property
    def max_batch_rows(self) -> int: ...

    @property
    def max_queue_delay_us(self) -> int: ...

    def report_refusal(self, reason: RejectReason, context: object = None) -> None: ...


BatcherFactory = Callable[[CompiledModel], Batcher]


@dataclass
class LoadedVersion:
    model: CompiledModel
    batcher: Batcher


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str  # READY or UNAVAILABLE, as in Triton's repository index
    reason: str = ""


def version_key(version: str) -> tuple[int, int, str]:
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


class ModelRepository:
    def __init__(
        self,
        root: Path,
        make_batcher: BatcherFactory,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.root = root
        self._make_batcher = make_batcher
        # Awaited after every load or unload (the server mirrors it into health and metrics).
        self.on_change = on_change
        self._models: dict[str, dict[str, LoadedVersion]] = {}
        self._latest: dict[str, LoadedVersion] = {}
        self._failed: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()
        self._draining: set[asyncio.Task[None]] = set()

    def on_disk(self, name: str | None = None) -> dict[str, list[str]]:
        """Model name -> version directories holding a manifest."""
        found: dict[str, list[str]] = {}
        if not self.root.is_dir():
            return found
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if name is not None and model_dir.name != name:
                continue
            versions = [
                v.name
                for v in model_dir.iterdir()
                if v.is_dir() and not v.name.startswith(".") and (v / MANIFEST_FILE).exists()
            ]
            if versions:
                found[model_dir.name] = sorted(versions, key=version_key)
        return found

    async def load_all(self) -> None:
        for name in self.on_disk():
            await self.load(name, missing_ok=True)

    async def load(self, name: str, *, missing_ok: bool = False) -> list[str]:
        """(Re)load every version of `name` on disk; returns the versions now ready."""
        async with self._lock:
            versions = self.on_disk(name).get(name, [])
            if not versions and not missing_ok:
                raise NotFound(f"model {name!r}: no bundle under {self.root / name}")
            fresh: dict[str, LoadedVersion] = {}
            for version in versions:
                bundle = self.root / name / version
                try:
                    model = await asyncio.to_thread(_open_checked, bundle)
                except ForestGateError as exc:
                    self._failed[(name, version)] = str(exc)
                    log.error("model %s version %s not loaded: %s", name, version, exc)
                    continue
                self._failed.pop((name, version), None)
                fresh[version] = LoadedVersion(model, self._make_batcher(model))
                log.info("model %s version %s ready (%s)", name, version, model.manifest.task)
            retired = list(self._models.get(name, {}).values())
            self._install(name, fresh)
        for old in retired:
            self._retire(old)
        if self.on_change is not None:
            await self.on_change()
        return sorted(fresh, key=version_key)

    async def unload(self, name: str) -> None:
        async with self._lock:
            if name not in self._models:
                raise NotFound(f"model {name!r} is not loaded")
            retired = list(self._models[name].values())
            self._install(name, {})
        for old in retired:
            self._retire(old)
        if self.on_change is not None:
            await self.on_change()

    def _install(self, name: str, versions: dict[str, LoadedVersion]) -> None:
        if versions:
            self._models[name] = versions
            self._latest[name] = versions[max(versions, key=version_key)]
        else:
            self._models.pop(name, None)
            self._latest.pop(name, None)

    def _retire(self, old: LoadedVersion) -> None:
        """Drain the replaced version in the background; what it accepted still completes."""
        task = asyncio.get_running_loop().create_task(self._drain(old))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, old: LoadedVersion) -> None:
        await old.batcher.drain()
        old.model.close()

    def get(self, name: str, version: str = "") -> LoadedVersion:
        """The requested version, or the latest when version is empty; NotFound otherwise."""
        if version:
            found = self._models.get(name, {}).get(version)
        else:
            found = self._latest.get(name)
        if found is None:
            if name not in self._models:
                raise NotFound(f"model {name!r} is not loaded")
            raise NotFound(
                f"model {name!r} has no version {version!r}; loaded: "
                + ", ".join(sorted(self._models[name], key=version_key))
            )
        return found

    def serves(self, name: str) -> bool:
        """Whether a request naming no version would reach a loaded version of `name`."""
        return name in self._latest

    def versions(self, name: str) -> list[str]:
        if name not in self._models:
            raise NotFound(f"model {name!r} is not loaded")
        return sorted(self._models[name], key=version_key)

    def loaded(self) -> list[LoadedVersion]:
        return [v for versions in self._models.values() for v in versions.values()]

    def index(self) -> list[IndexEntry]:
        entries = [IndexEntry(v.model.name, v.model.version, "READY") for v in self.loaded()] + [
            IndexEntry(n, ver, "UNAVAILABLE", why) for (n, ver), why in self._failed.items()
        ]
        return sorted(entries, key=lambda e: (e.name, version_key(e.version)))

    async def drain_all(self) -> None:
        """Drain every loaded version and wait for background drains (shutdown)."""
        await asyncio.gather(*(v.batcher.drain() for v in self.loaded()))
        if self._draining:
            await asyncio.gather(*self._draining)


def _open_checked(bundle: Path) -> CompiledModel:
    model = CompiledModel.open(bundle)
    expected = (bundle.parent.name, bundle.name)
    if (model.name, model.version) != expected:
        raise BundleError(
            f"{bundle}: manifest is for {model.name}/{model.version}, but the bundle sits in "
            f"{expected[0]}/{expected[1]}; compile it under the name and version it serves as"
        )
    model.self_check()  # also the warm-up: the library's pages are touched before traffic
    return model
