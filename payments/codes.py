"""The response-code taxonomy: what an issuer's answer means (approved, soft or hard decline),
which decline family it belongs to, its Visa category on a given date and what a Mastercard
Merchant Advice Code asks for, all read from the versioned rules.yaml.

Codes are per network because the same digits differ (Visa 65 is a frequency limit, Mastercard 65
an SCA soft decline). A code or network the file does not list classifies as ``known=False``,
which the guardrail never retries automatically (H11).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from forestgate.payments.document import Node, read
from forestgate.payments.limits import Limits, parse_limits
from forestgate.payments.timeline import Period, Timeline, parse_timeline


class Outcome(StrEnum):
    """The issuer's answer in one word."""

    APPROVED = "approved"
    SOFT = "soft"  # may succeed later, elsewhere, or after a data change
    HARD = "hard"  # will not succeed on this credential


class Family(StrEnum):
    """Why an attempt was declined, grouped by what recovers it."""

    APPROVED = "approved"
    TECHNICAL = "technical"  # issuer/switch/route trouble: minutes later or on another route
    SCA = "sca"  # authentication required: a CIT with 3DS in session
    DATA = "data"  # expiry, CVV, PAN: only after the data changes
    INSUFFICIENT_FUNDS = "insufficient_funds"  # funds or limits: after the next funding event
    HARD = "hard"  # lost, stolen, closed, not permitted: never on this credential
    GENERIC = "generic"  # do not honor and other unspecific refusals
    SUSPECTED_FRAUD = "suspected_fraud"  # the issuer suspects fraud: caution, step-up


class AdviceAction(StrEnum):
    """What a Mastercard Merchant Advice Code asks the merchant to do."""

    UPDATE_CREDENTIALS = "update_credentials"  # 01, 04: only with changed card data (H3)
    RETRY_LATER = "retry_later"  # 02
    NEVER_RETRY = "never_retry"  # 03, 21 (H4)
    RETRY_AFTER = "retry_after"  # 24-30: not before a fixed delay (H5)
    INFORMATIONAL = "informational"  # 05, 22, 40s: no retry guidance
    UNKNOWN = "unknown"  # not in rules.yaml: no automated retry (H11)


NETWORK_VISA = "visa"
NETWORK_MASTERCARD = "mastercard"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One response code of one network as understood on one date."""

    network: str
    code: str
    outcome: Outcome
    family: Family
    visa_category: int | None  # 1-4 for Visa declines, None otherwise
    description: str
    known: bool = True  # False: the network or code is missing from rules.yaml (H11)
    cancels_recurring: bool = False  # Visa R0/R1/R3: stop the recurring schedule (H4)
    mc_group: str | None = None  # Mastercard's 79/82/83 grouping of the specific code

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVED

    @property
    def retry_later_ok(self) -> bool:
        """A later reattempt may succeed (the guardrail still has the last word)."""
        return self.known and self.outcome is Outcome.SOFT

    @property
    def cascade_now_ok(self) -> bool:
        """An immediate failover to another route may succeed: only route/issuer-system trouble;
        another acquirer gets the same issuer answer for funds, fraud or data declines."""
        return self.known and self.family is Family.TECHNICAL


@dataclass(frozen=True, slots=True)
class AdviceInfo:
    """One Mastercard Merchant Advice Code."""

    code: str
    action: AdviceAction
    description: str
    retry_after: dt.timedelta | None = None  # MAC 24-30
    cancels_recurring: bool = False  # MAC 21
    known: bool = True


@dataclass(frozen=True, slots=True)
class _Code:
    family: Family
    description: str
    cancels_recurring: bool


@dataclass(frozen=True, slots=True)
class ResponseCodes:
    """Every network's code table, Visa's dated categories and the Mastercard advice codes."""

    version: str
    source: Path
    tables: Mapping[str, Mapping[str, _Code]]
    visa_categories: Timeline[Mapping[str, int]]
    mc_groups: Mapping[str, str] = field(default_factory=dict)
    advice: Mapping[str, AdviceInfo] = field(default_factory=dict)
    _index: Timeline[Mapping[tuple[str, str], CodeInfo]] = field(
        init=False, repr=False, compare=False
    )

    def __repr__(self) -> str:
        return f"ResponseCodes(version={self.version!r}, source={str(self.source)!r})"

    @classmethod
    def load(cls, path: Path | None = None) -> ResponseCodes:
        """Read and check ``path`` (default: the packaged rules.yaml); ConfigError if invalid.

        The whole file is checked, guardrail section included, so a broken file fails here too.
        """
        return load_rules_file(path)[0]

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(self.tables)

    def __post_init__(self) -> None:
        # Every (network, code) classified once per category period: classify is on the
        # guardrail's path, once per past attempt per check.
        index = Timeline(
            tuple(
                Period(p.start, p.end, self._classify_all(p.value), p.line)
                for p in self.visa_categories.periods
            )
        )
        object.__setattr__(self, "_index", index)

    def _classify_all(self, categories: Mapping[str, int]) -> Mapping[tuple[str, str], CodeInfo]:
        infos: dict[tuple[str, str], CodeInfo] = {}
        for net, table in self.tables.items():
            for code, entry in table.items():
                category: int | None = None
                if net == NETWORK_VISA and entry.family is not Family.APPROVED:
                    category = categories.get(code, 4)
                if entry.family is Family.APPROVED:
                    outcome = Outcome.APPROVED
                elif entry.family is Family.HARD or category == 1:
                    outcome = Outcome.HARD
                else:
                    outcome = Outcome.SOFT
                infos[(net, code)] = CodeInfo(
                    network=net,
                    code=code,
                    outcome=outcome,
                    family=entry.family,
                    visa_category=category,
                    description=entry.description,
                    cancels_recurring=entry.cancels_recurring,
                    mc_group=self.mc_groups.get(code) if net == NETWORK_MASTERCARD else None,
                )
        return MappingProxyType(infos)

    def classify(self, network: str, code: str, on: dt.date) -> CodeInfo:
        """What ``code`` from ``network`` means on date ``on`` (a datetime counts by its UTC date).

        Never raises for an unknown network or code: it returns ``known=False``, outcome SOFT,
        family GENERIC, so the taxonomy stays total and the guardrail refuses to retry it (H11).
        """
        net = network.lower()
        info = self._index.at(_utc_date(on)).get((net, code))
        if info is not None:
            return info
        return CodeInfo(
            network=net,
            code=code,
            outcome=Outcome.SOFT,
            family=Family.GENERIC,
            visa_category=None,
            description="unknown network" if net not in self.tables else "unknown code",
            known=False,
        )

    def codes(
        self, network: str, family: Family | None = None, *, on: dt.date
    ) -> tuple[CodeInfo, ...]:
        """Every code of ``network`` (optionally of one family) as understood on ``on``, in file
        order. An unknown network has no codes."""
        table = self.tables.get(network.lower(), {})
        infos = (self.classify(network, code, on) for code in table)
        return tuple(info for info in infos if family is None or info.family is family)

    def merchant_advice(self, code: str) -> AdviceInfo:
        """The Mastercard Merchant Advice Code ``code``; unknown codes have action UNKNOWN."""
        info = self.advice.get(code)
        if info is None:
            return AdviceInfo(code, AdviceAction.UNKNOWN, "unknown advice code", known=False)
        return info


def default_rules_path() -> Path:
    """The rules.yaml shipped inside the package."""
    return Path(str(resources.files("forestgate.payments").joinpath("rules.yaml")))


def load_rules_file(path: Path | None = None) -> tuple[ResponseCodes, Limits]:
    """Parse and check the whole rules file: the code taxonomy and the guardrail limits."""
    path = default_rules_path() if path is None else Path(path)
    root = read(path)
    top = root.fields(required=("version", "networks", "merchant_advice_codes", "guardrail"))
    version = top["version"].text()
    tables: dict[str, dict[str, _Code]] = {}
    categories: Timeline[Mapping[str, int]] | None = None
    groups: dict[str, str] = {}
    for network, net_node in top["networks"].items():
        if network != network.lower():
            raise net_node.error(f"network names are lower case, got {network!r}")
        net_fields = net_node.fields(required=("codes",), optional=("categories", "groups"))
        tables[network] = _parse_codes(net_fields["codes"])
        if "categories" in net_fields:
            if network != NETWORK_VISA:
                raise net_fields["categories"].error("categories exist for visa only")
            categories = parse_timeline(
                net_fields["categories"],
                functools.partial(_parse_categories, table=tables[network]),
                value_fields=("category_1", "category_2", "category_3"),
            )
        if "groups" in net_fields:
            if network != NETWORK_MASTERCARD:
                raise net_fields["groups"].error("groups exist for mastercard only")
            groups = _parse_groups(net_fields["groups"], tables[network])
    if NETWORK_VISA in tables and categories is None:
        raise top["networks"].error("visa needs its 'categories'")
    codes = ResponseCodes(
        version=version,
        source=path,
        tables=MappingProxyType({k: MappingProxyType(v) for k, v in tables.items()}),
        visa_categories=categories or Timeline.constant(MappingProxyType({})),
        mc_groups=MappingProxyType(groups),
        advice=MappingProxyType(_parse_advice(top["merchant_advice_codes"])),
    )
    return codes, parse_limits(top["guardrail"])


def _parse_codes(node: Node) -> dict[str, _Code]:
    table: dict[str, _Code] = {}
    for code, entry in node.items():
        fields = entry.fields(required=("family", "description"), optional=("cancels_recurring",))
        family_text = fields["family"].text()
        try:
            family = Family(family_text)
        except ValueError:
            raise fields["family"].error(
                f"unknown family {family_text!r}; expected one of "
                f"{', '.join(f.value for f in Family)}"
            ) from None
        cancels = fields["cancels_recurring"].boolean() if "cancels_recurring" in fields else False
        table[code] = _Code(family, fields["description"].text(), cancels)
    if not table:
        raise node.error("a network needs at least one code")
    return table


def _parse_categories(
    item: Node, period: dict[str, Node], *, table: Mapping[str, _Code]
) -> Mapping[str, int]:
    """One period's Visa categories 1-3; every other decline code is category 4."""
    membership: dict[str, tuple[int, int]] = {}  # code -> (category, line)
    for category in (1, 2, 3):
        name = f"category_{category}"
        if name not in period:
            raise item.error(f"missing field {name!r}")
        for code_node in period[name].sequence():
            code = code_node.text()
            if code in membership:
                other, line = membership[code]
                raise code_node.error(
                    f"code {code!r} is listed in two categories: category_{other} "
                    f"(line {line}) and category_{category}"
                )
            entry = table.get(code)
            if entry is None:
                raise code_node.error(f"code {code!r} is not in visa.codes")
            if entry.family is Family.APPROVED:
                raise code_node.error(f"code {code!r} is an approval, not a decline")
            membership[code] = (category, code_node.line)
    return MappingProxyType({code: cat for code, (cat, _) in membership.items()})


def _parse_groups(node: Node, table: Mapping[str, _Code]) -> dict[str, str]:
    groups: dict[str, str] = {}
    for group, codes_node in node.items():
        for code_node in codes_node.sequence():
            code = code_node.text()
            if code not in table:
                raise code_node.error(f"code {code!r} is not in mastercard.codes")
            if code in groups:
                raise code_node.error(f"code {code!r} is in two groups: {groups[code]} and {group}")
            groups[code] = group
    return groups


def _parse_advice(node: Node) -> dict[str, AdviceInfo]:
    advice: dict[str, AdviceInfo] = {}
    for code, entry in node.items():
        fields = entry.fields(
            required=("action", "description"),
            optional=("retry_after_hours", "cancels_recurring"),
        )
        action_text = fields["action"].text()
        try:
            action = AdviceAction(action_text)
        except ValueError:
            action = AdviceAction.UNKNOWN
        if action is AdviceAction.UNKNOWN:
            choices = ", ".join(a.value for a in AdviceAction if a is not AdviceAction.UNKNOWN)
            raise fields["action"].error(
                f"unknown action {action_text!r}; expected one of {choices}"
            )
        delay: dt.timedelta | None = None
        if action is AdviceAction.RETRY_AFTER:
            if "retry_after_hours" not in fields:
                raise entry.error("action retry_after needs 'retry_after_hours'")
            delay = dt.timedelta(hours=fields["retry_after_hours"].integer(minimum=1))
        elif "retry_after_hours" in fields:
            raise fields["retry_after_hours"].error("only action retry_after takes a delay")
        cancels = fields["cancels_recurring"].boolean() if "cancels_recurring" in fields else False
        advice[code] = AdviceInfo(code, action, fields["description"].text(), delay, cancels)
    return advice


def _utc_date(on: dt.date) -> dt.date:
    if isinstance(on, dt.datetime):
        if on.tzinfo is None:
            return on.date()
        return on.astimezone(dt.UTC).date()
    return on
