"""Templated string fields: a request parsed once, with only its templated strings rendered per
call.

Rendering the whole JSON and parsing it into the message again on every call costs about 60 us
in protobuf's json_format, an order more than the rendering, and it ran on the load tool's
core once per call. Most call data templates only string values (`"id": "load-{{.RequestNumber}}"`),
so each such value is rendered on its own and set on a copy of the message parsed at start.
Each value is rendered from its JSON-escaped text and decoded as a JSON string, exactly the
piece the whole-text render would have produced there, so the bytes sent are the same. A
template with an action anywhere else (a key, a number, a non-string field such as an enum,
bytes or a Timestamp, a map) is not handled here: `compile_fields` returns None, and the caller
renders the whole text as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from forestgate.clients.load.template import CallData, Template

Path = tuple[str | int, ...]  # field names and repeated indices, from the message down


@dataclass(frozen=True)
class FieldTemplates:
    base: Any  # the request parsed from the data as written, templates unrendered
    fields: tuple[tuple[Path, Template], ...]

    def render(self, data: CallData) -> bytes | None:
        """Call n's request bytes, or None when a rendered value is not a JSON string (the
        caller's whole-text path then reports it as it always has)."""
        message = type(self.base)()
        message.CopyFrom(self.base)
        for path, template in self.fields:
            try:
                value = json.loads(f'"{template.render(data)}"')
            except ValueError:
                return None
            _set(message, path, value)
        return bytes(message.SerializeToString())


def compile_fields(element: Any, base: Any, *, functions: bool) -> FieldTemplates | None:
    """FieldTemplates for one data element parsed into ``base``, or None if some action is not
    inside a string field."""
    found: list[tuple[Path, Template]] = []
    if not _collect(element, base.DESCRIPTOR, (), found, functions):
        return None
    return FieldTemplates(base, tuple(found)) if found else None


def _collect(
    value: Any, where: Descriptor | None, path: Path, found: list[tuple[Path, Template]],
    functions: bool,
) -> bool:  # fmt: skip
    if isinstance(value, dict):
        if where is None:
            return False
        for key, item in value.items():
            field = _field(where, key)
            if field is None or "{{" in key:
                return False
            if not _collect_field(item, field, (*path, field.name), found, functions):
                return False
        return True
    return not (isinstance(value, str) and "{{" in value)


def _collect_field(
    value: Any, field: FieldDescriptor, path: Path, found: list[tuple[Path, Template]],
    functions: bool,
) -> bool:  # fmt: skip
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "{{" not in json.dumps(value)
    items = list(enumerate(value)) if field.is_repeated and isinstance(value, list) else None
    for index, item in items if items is not None else [(None, value)]:
        at = path if index is None else (*path, index)
        if isinstance(item, str) and "{{" in item:
            if field.type != FieldDescriptor.TYPE_STRING:
                return False
            escaped = json.dumps(item, ensure_ascii=False)[1:-1]
            found.append((at, Template(escaped, functions=functions)))
        elif not _collect(item, field.message_type, at, found, functions):
            return False
    return True


def _field(message: Descriptor, key: str) -> FieldDescriptor | None:
    field = message.fields_by_name.get(key)
    if field is not None:
        return field
    return next((f for f in message.fields if f.json_name == key), None)


def _set(message: Any, path: Path, value: str) -> None:
    *parents, last = path
    target = message
    for step in parents:
        target = target[step] if isinstance(step, int) else getattr(target, step)
    if isinstance(last, int):
        target[last] = value
    else:
        setattr(target, last, value)
