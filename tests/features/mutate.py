"""Copies of a data set with rows rewritten, for the point-in-time and leakage tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from forestgate.training.trainer.features import REQUIRED, FeatureTables

Mutation = Callable[[pa.Table, npt.NDArray[np.bool_]], pa.Table]


def rewrite(
    src: Path, dst: Path, chosen: Callable[[pa.Table], npt.NDArray[np.bool_]], how: Mutation
) -> None:
    """Copy the files extraction reads from ``src`` to ``dst``, attempts rewritten by ``how`` on
    the rows ``chosen`` selects."""
    dst.mkdir()
    for name in REQUIRED:
        shutil.copy(src / name, dst / name)
    table = pq.read_table(src / "attempts.parquet")
    pq.write_table(how(table, chosen(table)), dst / "attempts.parquet")


def replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def where(mask: npt.NDArray[np.bool_], new: pa.Array, old: pa.ChunkedArray) -> pa.Array:
    return pa.compute.if_else(pa.array(mask), new, old)


def feature_rows(
    t: FeatureTables, kind: str, names: tuple[str, ...], keep: npt.NDArray[np.bool_] | None = None
) -> dict[tuple[object, ...], npt.NDArray[np.float32]]:
    """Each row's feature vector keyed by (attempt_id, route_id or delay_s)."""
    table: pa.Table = getattr(t, kind)
    second = "delay_s" if "delay_s" in table.column_names else "route_id"
    keys = zip(table["attempt_id"].to_pylist(), table[second].to_pylist(), strict=True)
    values = np.column_stack([table[n].to_numpy() for n in names]).astype(np.float32)
    return {k: values[i] for i, k in enumerate(keys) if keep is None or keep[i]}


def moved(
    before: dict[tuple[object, ...], npt.NDArray[np.float32]],
    after: dict[tuple[object, ...], npt.NDArray[np.float32]],
    names: tuple[str, ...],
) -> dict[str, int]:
    """Per feature, how many of ``before``'s rows differ in ``after`` (NaN equals NaN); a row
    missing from ``after`` counts under '<row gone>'."""
    out: dict[str, int] = {}
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            out["<row gone>"] = out.get("<row gone>", 0) + 1
            continue
        same = (old == new) | (np.isnan(old) & np.isnan(new))
        for j in np.flatnonzero(~same):
            out[names[j]] = out.get(names[j], 0) + 1
    return out
