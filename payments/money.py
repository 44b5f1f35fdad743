"""Money: integer minor units with ISO 4217 exponents, and conversions whose rounding is named.

Amounts are never floats. A Money is an ``int`` count of the currency's minor unit (cents, yen,
fils); anything fractional on the way (basis points, exchange rates, probabilities) is a Decimal
and becomes minor units again only through ``to_minor`` with an explicit rounding mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import Enum
from types import MappingProxyType

from forestgate.errors import InvalidInput
from forestgate.payments.errors import UnknownCurrency

# ISO 4217 minor-unit exponents of the currencies the platform handles. The standard's own values,
# even where practice differs (HUF and CZK keep 2 although their coins are gone; ISK and CLP 0).
EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        # 0: no minor unit
        "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "PYG": 0, "UGX": 0, "XOF": 0,
        "XAF": 0, "XPF": 0, "RWF": 0, "KMF": 0, "GNF": 0, "DJF": 0, "BIF": 0, "VUV": 0,
        # 3: thousandths
        "KWD": 3, "BHD": 3, "JOD": 3, "TND": 3, "OMR": 3, "LYD": 3, "IQD": 3,
        # 2: hundredths
        "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
        "CZK": 2, "HUF": 2, "RON": 2, "BGN": 2, "BRL": 2, "MXN": 2, "ARS": 2, "COP": 2,
        "PEN": 2, "INR": 2, "AUD": 2, "NZD": 2, "CAD": 2, "SGD": 2, "HKD": 2, "CNY": 2,
        "TWD": 2, "THB": 2, "MYR": 2, "IDR": 2, "PHP": 2, "ZAR": 2, "AED": 2, "SAR": 2,
        "QAR": 2, "ILS": 2, "TRY": 2, "EGP": 2, "NGN": 2, "KES": 2,
    }
)  # fmt: skip


class Rounding(Enum):
    """How a fractional amount becomes whole minor units; always chosen by the caller."""

    HALF_EVEN = ROUND_HALF_EVEN  # banker's rounding: unbiased over many conversions
    HALF_UP = ROUND_HALF_UP  # commercial rounding, what most fee schedules print
    UP = ROUND_CEILING  # toward +infinity: never under-estimate a cost
    DOWN = ROUND_FLOOR  # toward -infinity
    TRUNCATE = ROUND_DOWN  # toward zero


def exponent(currency: str) -> int:
    """ISO 4217 minor-unit exponent of ``currency`` (2 for USD, 0 for JPY, 3 for KWD)."""
    try:
        return EXPONENTS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(currency) from None


def check_currency(currency: object) -> str:
    """``currency`` if it is a known ISO 4217 code, else UnknownCurrency."""
    if not isinstance(currency, str) or currency not in EXPONENTS:
        raise UnknownCurrency(currency)
    return currency


def to_minor(amount: Decimal, *, rounding: Rounding) -> int:
    """A fractional count of minor units rounded to a whole one."""
    if not isinstance(amount, Decimal):
        raise InvalidInput(f"expected a Decimal amount of minor units, got {type(amount).__name__}")
    if not amount.is_finite():
        raise InvalidInput(f"amount must be finite, got {amount}")
    return int(amount.quantize(Decimal(1), rounding=rounding.value))


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount in whole minor units of an ISO 4217 currency: Money(1999, "USD") is $19.99."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True cents is a bug, not an amount.
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            kind = type(self.amount_minor).__name__
            raise InvalidInput(f"amount_minor must be an int of minor units, got {kind}")
        check_currency(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_major(cls, amount: Decimal | str | int, currency: str, *, rounding: Rounding) -> Money:
        """Money from major units ("19.99", Decimal("0.005")) rounded to the currency's exponent."""
        if isinstance(amount, float | bool):
            raise InvalidInput("money is never built from a float; pass a Decimal or a string")
        try:
            value = Decimal(amount)
        except ArithmeticError:
            raise InvalidInput(f"not a decimal amount: {amount!r}") from None
        scaled = value.scaleb(exponent(currency))
        return cls(to_minor(scaled, rounding=rounding), currency)

    @property
    def exponent(self) -> int:
        return exponent(self.currency)

    def to_major(self) -> Decimal:
        """The exact amount in major units, e.g. Decimal('19.99')."""
        return Decimal(self.amount_minor).scaleb(-self.exponent)

    def __str__(self) -> str:
        return f"{self.to_major():.{self.exponent}f} {self.currency}"

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise InvalidInput(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidInput(f"currency mismatch: {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_minor < other.amount_minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_minor <= other.amount_minor

    def times(self, factor: Decimal | int, *, rounding: Rounding) -> Money:
        """This amount times a Decimal factor, rounded back to minor units."""
        if isinstance(factor, float | bool):
            raise InvalidInput("money is never multiplied by a float; pass a Decimal")
        return Money(
            to_minor(Decimal(self.amount_minor) * factor, rounding=rounding), self.currency
        )

    def bps(self, basis_points: Decimal | int, *, rounding: Rounding) -> Money:
        """``basis_points`` / 10,000 of this amount (150 bps of $100.00 is $1.50)."""
        return self.times(Decimal(basis_points) / Decimal(10_000), rounding=rounding)


@dataclass(frozen=True, slots=True)
class ExchangeRates:
    """Mid rates against one base currency: ``per_base["EUR"]`` is how many euros one unit of
    ``base`` buys (major units). Immutable; build a new one for a new day or an FX shock."""

    base: str
    per_base: Mapping[str, Decimal]

    def __post_init__(self) -> None:
        check_currency(self.base)
        rates = dict(self.per_base)
        for currency, rate in rates.items():
            check_currency(currency)
            if isinstance(rate, float | bool) or not isinstance(rate, Decimal | int):
                raise InvalidInput(f"rate for {currency} must be a Decimal, got {rate!r}")
            if not Decimal(rate) > 0:
                raise InvalidInput(f"rate for {currency} must be positive, got {rate}")
        rates[self.base] = Decimal(1)
        object.__setattr__(
            self, "per_base", MappingProxyType({k: Decimal(v) for k, v in rates.items()})
        )

    def rate(self, source: str, target: str) -> Decimal:
        """Major units of ``target`` per major unit of ``source``."""
        for currency in (source, target):
            check_currency(currency)
            if currency not in self.per_base:
                raise InvalidInput(f"no exchange rate for {currency} (base {self.base})")
        return self.per_base[target] / self.per_base[source]

    def convert(self, money: Money, target: str, *, rounding: Rounding) -> Money:
        """``money`` in ``target`` currency at the mid rate, minor-unit exponents respected."""
        return convert(money, target, self.rate(money.currency, target), rounding=rounding)


def convert(money: Money, target: str, rate: Decimal | str, *, rounding: Rounding) -> Money:
    """``money`` times ``rate`` (major units of target per major unit of source) in ``target``.

    Exponents differ between currencies (USD 2, JPY 0, KWD 3), so the conversion goes through major
    units: 1000 JPY minor units at 0.0067 USD/JPY is 6.70 USD = 670 minor units.
    """
    if isinstance(rate, float | bool):
        raise InvalidInput("exchange rates are never floats; pass a Decimal or a string")
    factor = Decimal(rate)
    if not factor > 0:
        raise InvalidInput(f"exchange rate must be positive, got {rate}")
    major = money.to_major() * factor
    return Money(to_minor(major.scaleb(exponent(target)), rounding=rounding), target)
