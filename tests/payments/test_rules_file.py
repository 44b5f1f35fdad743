"""rules.yaml is checked before anything runs: each error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestgate.errors import ForestGateError
from forestgate.payments.codes import ResponseCodes, default_rules_path
from forestgate.payments.errors import ConfigError
from forestgate.payments.guardrail import Rules
from tests.payments.factory import edited, line_of

RULES = default_rules_path()


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        Rules.load(path)
    # The codes alone check the whole file too.
    with pytest.raises(ConfigError) as again:
        ResponseCodes.load(path)
    assert str(again.value) == str(caught.value)
    return caught.value


def assert_located(error: ConfigError, path: Path, line: int, field: str, message: str) -> None:
    assert error.path == path
    assert error.line == line, str(error)
    assert error.field == field, str(error)
    assert str(error).startswith(f"{path}:{line}: {field}: "), str(error)
    assert message in str(error)


def test_the_packaged_rules_load_with_a_version() -> None:
    rules = Rules.load()
    assert rules.version == "2025.05.1"
    assert rules.codes.source == RULES
    assert set(rules.codes.networks) == {"visa", "mastercard", "amex", "diners"}


def test_config_errors_are_forestgate_value_errors(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r"^version:", "versio:"))
    error = load_error(path)
    assert isinstance(error, ForestGateError) and isinstance(error, ValueError)


def test_unknown_top_level_field(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r"^guardrail:\n", "colour: blue\nguardrail:\n"))
    error = load_error(path)
    assert_located(error, path, line_of(path, "colour: blue"), "colour", "unknown field 'colour'")


def test_unknown_field_in_a_code(tmp_path: Path) -> None:
    path = edited(
        tmp_path, RULES, (r'"05": \{family: generic,', '"05": {family: generic, retry: yes,')
    )
    error = load_error(path)
    assert_located(
        error, path, line_of(path, "retry: yes"), "networks.visa.codes.05.retry", "unknown field"
    )


def test_unknown_field_in_an_effective_period(tmp_path: Path) -> None:
    path = edited(
        tmp_path, RULES, (r"\{from: 2025-05-25, value: 20,", "{from: 2025-05-25, valu: 20,")
    )
    error = load_error(path)
    assert_located(
        error,
        path,
        line_of(path, "valu: 20"),
        "guardrail.visa_max_reattempts[1].valu",
        "unknown field 'valu'",
    )


def test_missing_field(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r"  internal_window_days:\n    - \{value: 14.*\n", ""))
    error = load_error(path)
    assert_located(error, path, line_of(path, "guardrail:"), "guardrail", "'internal_window_days'")


def test_overlapping_effective_dates(tmp_path: Path) -> None:
    path = edited(
        tmp_path, RULES, (r"\{from: 2025-05-25, value: 20", "{from: 2025-05-20, value: 20")
    )
    error = load_error(path)
    assert_located(
        error,
        path,
        line_of(path, "from: 2025-05-20"),
        "guardrail.visa_max_reattempts[1]",
        f"overlapping effective dates: this period (from 2025-05-20) overlaps the period on "
        f"line {line_of(path, 'to: 2025-05-25')}",
    )


def test_overlapping_open_ended_periods(tmp_path: Path) -> None:
    path = edited(
        tmp_path,
        RULES,
        (r"    - \{value: 10, source:", "    - {value: 10}\n    - {value: 9, source:"),
    )
    error = load_error(path)
    assert "guardrail.mastercard_max_declines_24h[1]" in str(error)
    assert "overlapping effective dates" in str(error)


def test_a_gap_between_periods(tmp_path: Path) -> None:
    path = edited(
        tmp_path, RULES, (r"\{from: 2025-05-25, value: 20", "{from: 2025-06-01, value: 20")
    )
    error = load_error(path)
    assert_located(
        error, path, line_of(path, "from: 2025-06-01"), "guardrail.visa_max_reattempts[1]", "gap"
    )


@pytest.mark.parametrize(
    ("pattern", "replacement", "needle", "message"),
    [
        (r"\{to: 2025-05-25, value: 15", "{from: 2021-04-01, to: 2025-05-25, value: 15",
         "from: 2021-04-01", "first period must have no 'from'"),
        (r"\{from: 2025-05-25, value: 20", "{from: 2025-05-25, to: 2030-01-01, value: 20",
         "to: 2030-01-01", "last period must have no 'to'"),
        (r"\{to: 2025-05-25, value: 15", "{from: 2025-05-25, to: 2025-05-25, value: 15",
         "to: 2025-05-25, value: 15", "empty period"),
    ],
)  # fmt: skip
def test_periods_cover_every_date(
    tmp_path: Path, pattern: str, replacement: str, needle: str, message: str
) -> None:
    path = edited(tmp_path, RULES, (pattern, replacement))
    error = load_error(path)
    assert error.line == line_of(path, needle)
    assert message in str(error)


def test_a_code_in_two_visa_categories(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r'category_3: \["54",', 'category_3: ["51", "54",'))
    error = load_error(path)
    assert_located(
        error,
        path,
        line_of(path, 'category_3: ["51"'),
        "networks.visa.categories[0].category_3[0]",
        f"code '51' is listed in two categories: category_2 (line "
        f"{line_of(path, 'category_2:')}) and category_3",
    )


def test_a_code_twice_in_one_category(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r'category_3: \["54",', 'category_3: ["54", "54",'))
    error = load_error(path)
    assert "networks.visa.categories[0].category_3[1]" in str(error)
    assert "two categories" in str(error)


def test_a_category_code_must_exist(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r'category_3: \["54",', 'category_3: ["Q7", "54",'))
    error = load_error(path)
    assert "code 'Q7' is not in visa.codes" in str(error)
    assert error.line == line_of(path, '"Q7"')


def test_a_code_listed_twice_in_a_table(tmp_path: Path) -> None:
    twice = '\\1"05": {family: hard, description: x}\n\\1"05": {family: generic'
    path = edited(tmp_path, RULES, (r'( +)"05": \{family: generic', twice))
    error = load_error(path)
    assert "duplicate key '05'" in str(error)
    assert error.line == line_of(path, '"05": {family: generic')


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (r'"05": \{family: generic', '"05": {family: sorry', "unknown family 'sorry'"),
        (r"retry_after_hours: 1,", "retry_after_hours: one,", "expected an integer"),
        (r"retry_after_hours: 1,", "", "needs 'retry_after_hours'"),
        (r"\{action: never_retry, description: Do", "{action: shrug, description: Do",
         "unknown action 'shrug'"),
        (r"\{to: 2025-05-25, value: 15", "{to: 2025-13-25, value: 15", "expected a date"),
        (r"\{to: 2025-05-25, value: 15", "{to: 2025-05-25, value: 0", "must be >= 1"),
        (r"deny: \[retry, cascade\]", "deny: [retry, nap]", "unknown action kind 'nap'"),
        (r"deny: \[retry, cascade\]", "deny: [no_retry]", "not a reattempt"),
        (r"issuer_country: IN", "issuer_country: India", "ISO 3166"),
        (r"^  visa:\n", "  Visa:\n", "lower case"),
    ],
)  # fmt: skip
def test_bad_values_name_their_line(
    tmp_path: Path, pattern: str, replacement: str, message: str
) -> None:
    path = edited(tmp_path, RULES, (pattern, replacement))
    error = load_error(path)
    assert message in str(error)
    assert error.line is not None and error.line > 1
    assert str(error).startswith(f"{path}:{error.line}: ")


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = edited(tmp_path, RULES, (r'"05": \{family: generic,', '"05": {family: [generic,'))
    error = load_error(path)
    assert error.field == "<syntax>"
    assert error.line is not None and abs(error.line - line_of(path, "[generic")) <= 1


def test_missing_and_empty_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert "cannot read" in str(load_error(missing))
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    assert "empty file" in str(load_error(empty))
