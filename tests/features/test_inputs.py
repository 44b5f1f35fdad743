"""Bad input: a clear one-line InvalidInput naming the directory, file or column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forestgate.errors import InvalidInput
from forestgate.training.trainer.features import REQUIRED, check_inputs, extract


@pytest.fixture
def copy(data_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    out.mkdir()
    for name in REQUIRED:
        shutil.copy(data_dir / name, out / name)
    return out


def _message(excinfo: pytest.ExceptionInfo[InvalidInput]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as e:
        extract(tmp_path / "nowhere")
    assert "nowhere" in _message(e) and "no such data directory" in _message(e)


def test_missing_attempts(copy: Path) -> None:
    (copy / "attempts.parquet").unlink()
    with pytest.raises(InvalidInput) as e:
        extract(copy)
    assert "attempts.parquet: missing" in _message(e)


def test_not_parquet(copy: Path) -> None:
    (copy / "bins.parquet").write_text("bin8,issuer_id\n12345678,ISS0001\n")
    with pytest.raises(InvalidInput) as e:
        check_inputs(copy)
    assert "bins.parquet: not a readable Parquet file" in _message(e)


def test_missing_column(copy: Path) -> None:
    t = pq.read_table(copy / "attempts.parquet")
    pq.write_table(t.drop_columns(["eligible_routes"]), copy / "attempts.parquet")
    with pytest.raises(InvalidInput) as e:
        extract(copy)
    assert "attempts.parquet: missing column 'eligible_routes'" in _message(e)


def test_wrong_timestamp_type(copy: Path) -> None:
    t = pq.read_table(copy / "attempts.parquet")
    i = t.schema.get_field_index("ts_utc")
    pq.write_table(
        t.set_column(i, "ts_utc", t["ts_utc"].cast(pa.string())), copy / "attempts.parquet"
    )
    with pytest.raises(InvalidInput) as e:
        check_inputs(copy)
    assert "attempts.parquet: column 'ts_utc'" in _message(e)


@pytest.mark.parametrize("name", ["attempts.parquet", "merchants.parquet"])
def test_empty_table(copy: Path, name: str) -> None:
    t = pq.read_table(copy / name)
    pq.write_table(t.slice(0, 0), copy / name)
    with pytest.raises(InvalidInput) as e:
        extract(copy)
    assert f"{name}: no rows" in _message(e)
