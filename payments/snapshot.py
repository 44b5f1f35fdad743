"""The snapshot of an online feature state: a versioned JSON document of plain numbers, strings
and lists (no pickle), so a server restarts where it stopped.

Floats round-trip exactly (JSON keeps Python's shortest repr), and every collection keeps its
order, which is its expiry order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forestgate.errors import InvalidInput
from forestgate.payments.codes import Family, ResponseCodes
from forestgate.payments.counts import DeclineRecord
from forestgate.payments.online import CardSummary, FeatureState, PaymentSummary, Window
from forestgate.payments.routetable import RouteTable

FORMAT = "forestgate-online-features"
VERSION = 1


def snapshot(state: FeatureState) -> bytes:
    """The whole state as UTF-8 JSON."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "lateness_ms": state.lateness_ms,
        "watermark_ms": state.watermark_ms,
        "cards": [[key, *_card(card)] for key, card in state.cards.items()],
        "active_cards": list(state.active_cards),
        "rates": [[list(key), w.ts, w.hits] for key, w in state.rates.items()],
        "payments": [
            [key, p.attempts, p.first_decline_ms, p.newest_ms] for key, p in state.payments.items()
        ],
        "declines": [[key, *_decline(d)] for key, d in state.declines.items()],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def restore(
    data: bytes, *, routes: RouteTable, codes: ResponseCodes, utc_offset_s: Mapping[str, int]
) -> FeatureState:
    """A new state equal to the one ``data`` was taken from; InvalidInput if ``data`` is not a
    snapshot of this format and version."""
    document = _document(data)
    try:
        state = FeatureState(
            routes=routes,
            codes=codes,
            utc_offset_s=utc_offset_s,
            lateness_ms=int(document["lateness_ms"]),
        )
        state.watermark_ms = int(document["watermark_ms"])
        for key, *fields in document["cards"]:
            state.cards[key] = _card_from(fields)
        for key in document["active_cards"]:
            state.active_cards[key] = state.cards[key]
        for key, ts, hits in document["rates"]:
            state.rates[tuple(key)] = Window(ts, hits)
        for key, attempts, first, newest in document["payments"]:
            state.payments[key] = PaymentSummary(attempts, first, newest)
        for key, *fields in document["declines"]:
            state.declines[int(key)] = _decline_from(fields)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"a damaged online feature snapshot: {e!r}") from e
    return state


def save(state: FeatureState, path: Path) -> None:
    """Write the snapshot to ``path`` atomically: a crash leaves the previous file whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(snapshot(state))
    os.replace(partial, path)


def _document(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as e:
        raise InvalidInput(f"an online feature snapshot is not JSON: {e}") from e
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput(f"not an online feature snapshot (format {FORMAT!r} expected)")
    if document.get("version") != VERSION:
        raise InvalidInput(
            f"online feature snapshot version {document.get('version')!r}; "
            f"this build reads version {VERSION}"
        )
    return document


def _card(c: CardSummary) -> list[Any]:
    return [
        *(c.approvals, c.approved_usd, c.last_approval_ms, c.last_nsf_ms, c.last_recovery_ms),
        *(c.recoveries, list(c.newest), c.newest_was_nsf, c.recent.ts, c.recent.hits),
    ]


def _card_from(fields: list[Any]) -> CardSummary:
    approvals, usd, approval, nsf, recovery, recoveries, newest, was_nsf, ts, hits = fields
    return CardSummary(
        recent=Window(ts, hits),
        approvals=approvals,
        approved_usd=float(usd),
        last_approval_ms=approval,
        last_nsf_ms=nsf,
        last_recovery_ms=recovery,
        recoveries=recoveries,
        newest=(int(newest[0]), int(newest[1])),
        newest_was_nsf=bool(was_nsf),
    )


def _decline(d: DeclineRecord) -> list[Any]:
    return [
        *(d.ts_ms, d.family.value, d.code, d.visa_category, d.advice),
        *(d.attempts_so_far, d.first_decline_ms),
    ]


def _decline_from(fields: list[Any]) -> DeclineRecord:
    ts, family, code, visa_category, advice, attempts, first = fields
    return DeclineRecord(ts, Family(family), code, visa_category, advice, attempts, first)


__all__ = ["FORMAT", "VERSION", "restore", "save", "snapshot"]
