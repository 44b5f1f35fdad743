"""The errors of the payments core: a configuration file that cannot be trusted, and money in a
currency the ISO 4217 table does not know.

Both subclass the repository's tree (forestgate.errors), so the CLI and the server treat them like
any other ForestGate error: one line naming the file, line and field, exit non-zero.
"""

from __future__ import annotations

from pathlib import Path

from forestgate.errors import ConfigError as BaseConfigError
from forestgate.errors import InvalidInput


class ConfigError(BaseConfigError):
    """A rules or route file that is malformed or inconsistent; raised before anything runs.

    The message starts with ``file:line: field:`` so an editor can jump to the offending entry.
    """

    def __init__(self, message: str, *, path: Path | str, line: int | None, field: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {field}: {message}")
        self.path = Path(path)
        self.line = line
        self.field = field
        self.detail = message


class UnknownCurrency(InvalidInput):
    """A currency code missing from the ISO 4217 exponent table of forestgate.payments.money."""

    def __init__(self, currency: object) -> None:
        super().__init__(
            f"unknown currency {currency!r}: not in the ISO 4217 exponent table "
            "(forestgate.payments.money.EXPONENTS)"
        )
        self.currency = currency
