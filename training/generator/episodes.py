"""Outage episodes: per-entity time intervals (issuer or route down), sampled as a Poisson process
with exponential durations and looked up for many (entity, time) pairs at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_STRIDE = np.int64(1 << 36)  # > any horizon in seconds


@dataclass(frozen=True, slots=True)
class Episodes:
    """Non-overlapping [start_s, end_s) intervals per entity key, sorted by (key, start)."""

    key: I64
    start_s: I64
    end_s: I64

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        *,
        entities: int,
        horizon_s: int,
        rate_per_day: float,
        mean_duration_s: float,
    ) -> Episodes:
        counts = rng.poisson(rate_per_day * horizon_s / 86_400, size=entities)
        key = np.repeat(np.arange(entities, dtype=np.int64), counts)
        start = rng.integers(0, horizon_s, size=key.size, dtype=np.int64)
        duration = np.maximum(60, rng.exponential(mean_duration_s, size=key.size)).astype(np.int64)
        return cls.of(key, start, start + duration)

    @classmethod
    def of(cls, key: I64, start_s: I64, end_s: I64) -> Episodes:
        """Episodes from intervals in any order; overlapping ones of an entity are merged."""
        order = np.lexsort((start_s, key))
        keys: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for k, s, e in zip(
            key[order].tolist(), start_s[order].tolist(), end_s[order].tolist(), strict=True
        ):
            if keys and keys[-1] == k and s < ends[-1]:
                ends[-1] = max(ends[-1], e)
            else:
                keys.append(k)
                starts.append(s)
                ends.append(e)
        return cls(
            key=np.array(keys, dtype=np.int64),
            start_s=np.array(starts, dtype=np.int64),
            end_s=np.array(ends, dtype=np.int64),
        )

    def merged(self, other: Episodes) -> Episodes:
        return Episodes.of(
            np.concatenate([self.key, other.key]),
            np.concatenate([self.start_s, other.start_s]),
            np.concatenate([self.end_s, other.end_s]),
        )

    def active(self, key: I64, ts_s: I64) -> B:
        """Whether entity ``key`` is inside an episode at ``ts_s`` (elementwise)."""
        if self.key.size == 0:
            return np.zeros(np.shape(ts_s), dtype=np.bool_)
        sorted_keys = self.key * _STRIDE + self.start_s
        probe = np.asarray(key, dtype=np.int64) * _STRIDE + ts_s
        pos = np.searchsorted(sorted_keys, probe, side="right") - 1
        ok = pos >= 0
        pos = np.maximum(pos, 0)
        return np.asarray(ok & (self.key[pos] == key) & (ts_s < self.end_s[pos]), dtype=np.bool_)

    def ends_after(self, key: I64, ts_s: I64) -> I64:
        """End of the episode active at ``ts_s`` for ``key`` (ts_s itself where none is)."""
        if self.key.size == 0:
            return np.asarray(ts_s, dtype=np.int64).copy()
        sorted_keys = self.key * _STRIDE + self.start_s
        probe = np.asarray(key, dtype=np.int64) * _STRIDE + ts_s
        pos = np.maximum(np.searchsorted(sorted_keys, probe, side="right") - 1, 0)
        hit = (self.key[pos] == key) & (ts_s < self.end_s[pos]) & (self.start_s[pos] <= ts_s)
        return np.where(hit, self.end_s[pos], ts_s)
