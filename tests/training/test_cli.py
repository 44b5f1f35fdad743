"""`forestgate generate`: bad input fails on one line naming the field, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestgate import cli
from forestgate.training.generator import generate as gen


@pytest.fixture
def no_generation(monkeypatch: pytest.MonkeyPatch) -> list[gen.Request]:
    calls: list[gen.Request] = []

    def fake(request: gen.Request) -> gen.Result:
        calls.append(request)
        return gen.Result(request.out, {"attempts": 3, "truth": 3}, 0.1, 0, 0)

    monkeypatch.setattr(gen, "generate", fake)
    return calls


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--preset", "huge", "--seed", "1"], "preset"),
        (["--preset", "", "--seed", "1"], "preset"),
        (["--preset", "small", "--seed", "-1"], "seed"),
        (["--preset", "small", "--seed", "1.5"], "seed"),
        (["--preset", "small", "--seed", "ten"], "seed"),
        (["--preset", "small", "--seed", str(2**63)], "seed"),
    ],
)
def test_bad_preset_or_seed(
    args: list[str],
    field: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_generation: list[gen.Request],
) -> None:
    out = tmp_path / "out"
    code = cli.main(["generate", *args, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"forestgate generate: error: {field}:")
    assert no_generation == []
    assert not out.exists()


def test_unwritable_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_generation: list[gen.Request]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker, blocker / "below"):
        code = cli.main(["generate", "--preset", "small", "--seed", "3", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith("forestgate generate: error: out:"), err
        assert len(err.splitlines()) == 1
    assert no_generation == []


def test_valid_request_runs_the_generator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_generation: list[gen.Request]
) -> None:
    out = tmp_path / "new" / "dir"
    assert cli.main(["generate", "--preset", "small", "--seed", "42", "--out", str(out)]) == 0
    assert len(no_generation) == 1
    request = no_generation[0]
    assert (request.preset.name, request.seed, request.out) == ("small", 42, out)
    assert out.is_dir()
    assert "generated 3 attempts (small, seed 42)" in capsys.readouterr().out
