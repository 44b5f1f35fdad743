"""Template: the part of Go's text/template that ghz call data uses; compiled once, run per call.

Actions `{{ ... }}` (with `{{-`/`-}}` trimming and `{{/* comments */}}`) hold a pipeline of
commands separated by `|`; a command is a field (`.RequestNumber`), a literal, or a function
with arguments (`randomInt 1 10`). The functions are ghz's own: `newUUID`, `randomString n`
(n <= 0: a random length 2-16) and `randomInt min max` ([min, max)). Control structures
(if/range/with) and sprig's functions are refused at compile time with a one-line error.
"""

from __future__ import annotations

import random
import re
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from forestgate.clients.load import LoadError

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(\|||"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s|]+)')
_CHARSET = string.ascii_letters + string.digits
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break"}
FIELDS = (
    "WorkerID", "RequestNumber", "FullyQualifiedName", "MethodName", "ServiceName",
    "InputName", "OutputName", "IsClientStreaming", "IsServerStreaming", "Timestamp",
    "TimestampUnix", "TimestampUnixMilli", "TimestampUnixNano", "UUID",
)  # fmt: skip


class CallData:
    """The variables of one call; the clock and the UUID are read only if the template asks."""

    __slots__ = ("_now_ns", "_uuid", "method", "request_number", "worker_id")

    def __init__(self, method: MethodNames, worker_id: str, request_number: int) -> None:
        self.method = method
        self.worker_id = worker_id
        self.request_number = request_number
        self._now_ns = 0
        self._uuid = ""

    def now_ns(self) -> int:
        if not self._now_ns:
            self._now_ns = time.time_ns()
        return self._now_ns

    def field(self, name: str) -> Any:
        m = self.method
        if name == "RequestNumber":
            return self.request_number
        if name == "WorkerID":
            return self.worker_id
        if name == "UUID":
            if not self._uuid:
                self._uuid = str(uuid.uuid4())
            return self._uuid
        if name == "Timestamp":
            return rfc3339(self.now_ns())
        if name.startswith("TimestampUnix"):
            divisor = {"": 1_000_000_000, "Milli": 1_000_000, "Nano": 1}[name[13:]]
            return self.now_ns() // divisor
        return {
            "FullyQualifiedName": m.full_name,
            "MethodName": m.method,
            "ServiceName": m.service,
            "InputName": m.input,
            "OutputName": m.output,
            "IsClientStreaming": False,
            "IsServerStreaming": False,
        }[name]


@dataclass(frozen=True)
class MethodNames:
    full_name: str  # package.Service.Method, as ghz's FullyQualifiedName
    service: str  # the short service name
    method: str
    input: str  # short message names
    output: str


def rfc3339(ns: int, *, nano: bool = False) -> str:
    """Go's time.RFC3339 (or RFC3339Nano: trailing zeros of the fraction dropped), local time."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    local = time.localtime(seconds)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    if nano and fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    offset = local.tm_gmtoff or 0
    if offset == 0:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def new_uuid() -> str:
    return str(uuid.uuid4())


def random_string(length: int) -> str:
    if length <= 0:
        length = random.randint(2, 16)
    return "".join(random.choices(_CHARSET, k=length))


def random_int(low: int, high: int) -> int:
    low, high = max(low, 0), high if high > 0 else 1
    if high <= low:
        raise LoadError(f"template: randomInt {low} {high}: max must be above min")
    return random.randrange(low, high)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "newUUID": new_uuid,
    "randomString": random_string,
    "randomInt": random_int,
}
Piece = str | Callable[[CallData], str]


class Template:
    """A compiled template: literal text and actions, rendered per call with a CallData."""

    def __init__(self, text: str, *, functions: bool = True) -> None:
        self.pieces: list[Piece] = _compile(text, FUNCTIONS if functions else {})
        self.has_actions = any(not isinstance(p, str) for p in self.pieces)

    def render(self, data: CallData) -> str:
        return "".join(p if isinstance(p, str) else p(data) for p in self.pieces)


def _compile(text: str, functions: dict[str, Callable[..., Any]]) -> list[Piece]:
    pieces: list[Piece] = []
    position, trim_next = 0, False
    for match in _ACTION.finditer(text):
        literal = text[position : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group(1):
            literal = literal.rstrip()
        if literal:
            pieces.append(literal)
        body = match.group(2).strip()
        trim_next = bool(match.group(3))
        position = match.end()
        if body.startswith("/*") and body.endswith("*/"):
            continue
        pieces.append(_pipeline(body, functions))
    tail = text[position:]
    if trim_next:
        tail = tail.lstrip()
    if "{{" in tail:
        raise LoadError(f"template: unclosed action in {tail[:40]!r}")
    if tail:
        pieces.append(tail)
    return pieces


def _pipeline(body: str, functions: dict[str, Callable[..., Any]]) -> Callable[[CallData], str]:
    if not body:
        raise LoadError("template: missing value for command in {{}}")
    commands: list[list[str]] = [[]]
    for token in _TOKEN.findall(body):
        if token == "|":
            commands.append([])
        elif token:
            commands[-1].append(token)
    steps = [_command(words, functions, piped=i > 0) for i, words in enumerate(commands)]

    def run(data: CallData) -> str:
        value: Any = None
        for step in steps:
            value = step(data, value)
        return _format(value)

    return run


def _command(
    words: list[str], functions: dict[str, Callable[..., Any]], *, piped: bool
) -> Callable[[CallData, Any], Any]:
    if not words:
        raise LoadError("template: missing command in pipeline")
    head, args = words[0], [_operand(w) for w in words[1:]]
    if head in _KEYWORDS:
        raise LoadError(f"template: {{{{{head}}}}} is not supported (only values and functions)")
    if head.startswith(".") or head[0] in '"`-0123456789' or head in ("true", "false"):
        if args or piped:
            raise LoadError(f"template: can't give arguments to non-function {head}")
        operand = _operand(head)
        return lambda data, _prev: operand(data)
    function = functions.get(head)
    if function is None:
        raise LoadError(f'template: function "{head}" not defined')

    def call(data: CallData, previous: Any) -> Any:
        values = [a(data) for a in args] + ([previous] if piped else [])
        try:
            return function(*values)
        except TypeError as exc:
            raise LoadError(f"template: {head}: {exc}") from None

    return call


def _operand(word: str) -> Callable[[CallData], Any]:
    if word.startswith("."):
        name = word[1:]
        if name not in FIELDS:
            raise LoadError(f"template: can't evaluate field {name} (known: {', '.join(FIELDS)})")
        return lambda data: data.field(name)
    if word[0] == '"':
        value: Any = bytes(word[1:-1], "utf-8").decode("unicode_escape")
    elif word[0] == "`":
        value = word[1:-1]
    elif word in ("true", "false"):
        value = word == "true"
    else:
        try:
            value = int(word, 0)
        except ValueError:
            try:
                value = float(word)
            except ValueError:
                raise LoadError(f"template: unexpected {word!r} in command") from None
    return lambda _data: value


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
