"""The two models decisions use, as the repository serves them now: the approval model (one row per
candidate route) and the retry model (one row per candidate delay), with what their manifests
carry for decisions: the reference data and the retry model's delay grid.

Looked up on every call, so a hot reload of either model takes effect on the next decision;
what is parsed from a manifest is cached per version.
"""

from __future__ import annotations

from typing import Any

from forestgate.errors import BundleError, NotFound, Unavailable
from forestgate.payments.features import APPROVAL_FEATURES, RETRY_FEATURES
from forestgate.payments.routetable import RouteTable
from forestgate.server.decisions.reference_data import ReferenceData
from forestgate.server.decisions.value import Economics, Pricing, exchange_rates
from forestgate.server.repository import ModelRepository


class DecisionModels:
    def __init__(
        self,
        repository: ModelRepository,
        *,
        approval: str,
        retry: str,
        routes: RouteTable,
        economics: Economics,
    ) -> None:
        self.repository = repository
        self.approval = approval
        self.retry = retry
        self.routes = routes
        self.economics = economics
        self._world: tuple[str, ReferenceData, Pricing] | None = None
        self._delays: tuple[str, tuple[int, ...]] | None = None

    def reference_data(self) -> ReferenceData:
        return self._reference()[1]

    def world(self) -> tuple[ReferenceData, Pricing]:
        """The reference data, and route prices at its exchange rates, in one lookup."""
        _, world, pricing = self._reference()
        return world, pricing

    def retry_delays_s(self) -> tuple[int, ...]:
        """The delays the retry model was trained to score (its manifest's grid)."""
        model = self.repository.get(self.retry).model
        key = f"{model.name}/{model.version}"
        if self._delays is None or self._delays[0] != key:
            _check_features(model.manifest.feature_names, RETRY_FEATURES, key)
            delays = model.manifest.extra.get("retry_delays_s")
            if not isinstance(delays, list) or not all(isinstance(d, int) for d in delays):
                raise BundleError(f"{key}: manifest extra.retry_delays_s is missing")
            self._delays = (key, tuple(delays))
        return self._delays[1]

    def _reference(self) -> tuple[str, ReferenceData, Pricing]:
        """The approval model's reference data; the last one parsed while that model is away
        (an unload must not stop the incumbent from pricing routes)."""
        try:
            model = self.repository.get(self.approval).model
        except NotFound:
            if self._world is None:
                raise Unavailable(
                    f"decisions need the {self.approval!r} model's reference data; it is not "
                    "loaded and never was"
                ) from None
            return self._world
        key = f"{model.name}/{model.version}"
        if self._world is None or self._world[0] != key:
            _check_features(model.manifest.feature_names, APPROVAL_FEATURES, key)
            world = ReferenceData.from_manifest(model.manifest.extra, key)
            pricing = Pricing(self.routes, exchange_rates(world), self.economics)
            self._world = (key, world, pricing)
        return self._world


def _check_features(names: Any, expected: tuple[str, ...], key: str) -> None:
    if tuple(names) != expected:
        raise BundleError(
            f"{key}: its features are not the decision API's {len(expected)} features in order"
        )
