"""Where one process keeps the decision state besides the features: the guardrail's ledgers (one
per card and merchant) and the attempts Score decided, by authorization id. Both are saved to a
snapshot directory on close and loaded from it at start, so a graceful restart keeps them.

Every method runs to completion without awaiting, so on the server's event loop each is atomic.
Memory is bounded: attempts are the newest ``max_attempts`` ids; a ledger idle for longer than
the guardrail's retention (30 days of event time) is dropped, as it holds nothing a rule reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forestgate.errors import InvalidInput
from forestgate.payments.action import Action
from forestgate.payments.featurespec import RETRY_HORIZON_MS
from forestgate.payments.guardrail import Rules, Verdict
from forestgate.payments.history import Attempt
from forestgate.payments.ledger import Ledger, retention
from forestgate.server.decisions.records import SeenAttempt

FORMAT = 1


class MemoryLedgers:
    def __init__(self, rules: Rules, *, snapshot: Path | None = None) -> None:
        self.rules = rules
        self._snapshot = snapshot
        self._retention = retention(rules)
        self._ledgers: OrderedDict[tuple[str, str], Ledger] = OrderedDict()
        if snapshot is not None and snapshot.exists():
            for entry in _load(snapshot, "ledgers"):
                key = (entry["card"], entry["merchant"])
                self._ledgers[key] = Ledger.from_state(entry["state"], rules)

    async def check(
        self, card_key: str, merchant_id: str, actions: Sequence[Action], now: dt.datetime
    ) -> list[Verdict]:
        ledger = self._ledgers.get((card_key, merchant_id))
        if ledger is None:
            ledger = new_ledger(card_key, merchant_id, self.rules)
        return check_all(ledger, actions, now)

    def ledger(self, card_key: str, merchant_id: str) -> Ledger | None:
        return self._ledgers.get((card_key, merchant_id))

    async def record(self, attempt: Attempt) -> None:
        key = (attempt.card_key, attempt.merchant_id)
        ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = self._ledgers[key] = new_ledger(*key, self.rules)
        ledger.record(attempt)
        self._ledgers.move_to_end(key)
        self._expire(attempt.at)

    async def close(self) -> None:
        if self._snapshot is not None:
            entries = [
                {"card": card, "merchant": merchant, "state": ledger.to_state()}
                for (card, merchant), ledger in self._ledgers.items()
            ]
            _save(self._snapshot, "ledgers", entries)

    def _expire(self, now: dt.datetime) -> None:
        """Drop ledgers idle past the retention, least recently touched first."""
        while self._ledgers:
            key, oldest = next(iter(self._ledgers.items()))
            newest = oldest.newest_at
            if newest is None or newest >= now - self._retention:
                return
            del self._ledgers[key]


class MemoryAttempts:
    def __init__(self, *, max_attempts: int, snapshot: Path | None = None) -> None:
        self.max_attempts = max_attempts
        self._snapshot = snapshot
        self._seen: OrderedDict[str, SeenAttempt] = OrderedDict()
        if snapshot is not None and snapshot.exists():
            for entry in _load(snapshot, "attempts"):
                self._seen[entry["id"]] = SeenAttempt.from_state(entry["seen"])

    async def get(self, authorization_id: str) -> SeenAttempt | None:
        return self._seen.get(authorization_id)

    async def put(self, authorization_id: str, seen: SeenAttempt) -> None:
        self._seen[authorization_id] = seen
        self._seen.move_to_end(authorization_id)
        while len(self._seen) > self.max_attempts:
            self._seen.popitem(last=False)

    async def answer(
        self, authorization_id: str, route_id: str, approved: bool, code: str, advice: str | None
    ) -> SeenAttempt | None:
        """The attempt with its outcome filled in; None if it was already answered (the first
        report counts)."""
        seen = self._seen[authorization_id]
        if seen.reported:
            return None
        seen.answered(route_id, approved, code, advice)
        return seen

    async def unanswer(self, authorization_id: str) -> None:
        seen = self._seen.get(authorization_id)
        if seen is not None:
            seen.reported = False

    async def close(self) -> None:
        if self._snapshot is not None:
            entries = [{"id": key, "seen": seen.to_state()} for key, seen in self._seen.items()]
            _save(self._snapshot, "attempts", entries)


# Outcomes may arrive this late after a later attempt of the same card at the same merchant and
# still be filed in their place: the horizon within which a payment is retried, so a switch that
# reports a retry chain before the card's next payment stays exact.
REORDER_WINDOW = dt.timedelta(milliseconds=RETRY_HORIZON_MS)


def new_ledger(card_key: str, merchant_id: str, rules: Rules) -> Ledger:
    return Ledger(card_key, merchant_id, rules, reorder_window=REORDER_WINDOW)


def check_all(ledger: Ledger, actions: Sequence[Action], now: dt.datetime) -> list[Verdict]:
    """Each action's verdict. A consultation older than an attempt the ledger already holds
    (another replica, or a replay, recorded a later one) is judged as of that attempt, and no
    action is sent before it: judged later, every counter has seen everything recorded."""
    newest = ledger.newest_at
    if newest is not None and newest > now:
        now = newest
        actions = [a if a.at >= now else dataclasses.replace(a, at=now) for a in actions]
    return [ledger.check(action, now) for action in actions]


def _load(path: Path, kind: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not a ForestGate {kind} snapshot ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != kind or data.get("format") != FORMAT:
        raise InvalidInput(f"{path}: not a ForestGate {kind} snapshot (format {FORMAT})")
    entries: list[dict[str, Any]] = data["entries"]
    return entries


def _save(path: Path, kind: str, entries: list[dict[str, Any]]) -> None:
    """Written to a temporary file and renamed, so a crash mid-write leaves the old snapshot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps({"kind": kind, "format": FORMAT, "entries": entries}))
    os.replace(partial, path)
