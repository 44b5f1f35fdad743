"""Data: the serialized request and metadata of call number n, as ghz builds them.

JSON data is an object, or an array sent round-robin (element n % len). It is Go-templated per
call when it holds actions; otherwise every element is parsed and serialized once, here, so the
hot loop only indexes a tuple of bytes. Binary data (-b/-B) is length-delimited messages, or one
message. Every element is checked against the request type before any load is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]
from google.protobuf.message import DecodeError

from forestgate.clients.load import LoadError
from forestgate.clients.load.fields import FieldTemplates, compile_fields
from forestgate.clients.load.options import LoadOptions
from forestgate.clients.load.schema import MethodSchema
from forestgate.clients.load.template import CallData, Template

Metadata = tuple[tuple[str, str | bytes], ...]
_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")


@dataclass(frozen=True)
class CallInputs:
    """What call n sends: `static` payloads/metadata when nothing is templated."""

    payloads: tuple[bytes, ...] | None  # pre-serialized, indexed by n % len
    metadata: Metadata | None  # fixed metadata (None: none, or templated)
    templated: bool  # True: build() renders per call

    schema: MethodSchema
    templates: tuple[Template, ...] = ()
    metadata_template: Template | None = None
    # Per template: its string fields alone, when every action is inside one (fields.py).
    fields: tuple[FieldTemplates | None, ...] = ()

    def build(self, n: int, worker_id: str) -> tuple[bytes, Metadata | None]:
        """Render call n: its request bytes and metadata (one CallData for both, as ghz)."""
        if not self.templated:
            assert self.payloads is not None
            return self.payloads[n % len(self.payloads)], self.metadata
        call_data = CallData(self.schema.names, worker_id, n)
        if self.payloads is not None:
            payload = self.payloads[n % len(self.payloads)]
        else:
            payload = self._render(n % len(self.templates), call_data)
        if self.metadata_template is not None:
            return payload, _metadata(_json(self.metadata_template.render(call_data), "metadata"))
        return payload, self.metadata

    def _render(self, index: int, call_data: CallData) -> bytes:
        fields = self.fields[index] if self.fields else None
        payload = fields.render(call_data) if fields is not None else None
        if payload is None:
            text = self.templates[index].render(call_data)
            payload = _serialize(self.schema, _json(text, "data"), "data")
        return payload


def build_inputs(options: LoadOptions, schema: MethodSchema) -> CallInputs:
    """Check the data against the request type and pre-serialize what is not templated."""
    if schema.client_streaming or schema.server_streaming:
        raise LoadError(
            f"{schema.names.full_name} is a streaming method; only unary calls are supported"
        )
    use_templates = not options.disable_template_data
    functions = not options.disable_template_functions
    templates: tuple[Template, ...] = ()
    fields: tuple[FieldTemplates | None, ...] = ()
    payloads: tuple[bytes, ...] | None
    if options.binary_data is not None:
        payloads = _binary(schema, options.binary_data)
    else:
        elements = options.data if isinstance(options.data, list) else [options.data or {}]
        texts = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in elements]
        templates = tuple(Template(t, functions=functions) for t in texts) if use_templates else ()
        if any(t.has_actions for t in templates):
            payloads = None
            sample = CallData(schema.names, "g0c0", 0)
            for i, template in enumerate(templates):  # fail now, not during the run
                where = f"data[{i}]" if isinstance(options.data, list) else "data"
                _serialize(schema, _json(template.render(sample), where), where)
            fields = tuple(_fields(schema, e, functions) for e in elements)
        else:
            payloads = tuple(_serialize(schema, e, "data") for e in elements)
    metadata_template = None
    metadata: Metadata | None = None
    if options.metadata:
        text = json.dumps(options.metadata, ensure_ascii=False)
        compiled = Template(text, functions=functions) if use_templates else None
        if compiled is not None and compiled.has_actions:
            metadata_template = compiled
            _metadata(_json(compiled.render(CallData(schema.names, "g0c0", 0)), "metadata"))
        else:
            metadata = _metadata(options.metadata)
    return CallInputs(
        payloads=payloads,
        metadata=metadata,
        templated=payloads is None or metadata_template is not None,
        schema=schema,
        templates=templates if payloads is None else (),
        metadata_template=metadata_template,
        fields=fields if payloads is None else (),
    )


def _fields(schema: MethodSchema, element: Any, functions: bool) -> FieldTemplates | None:
    try:
        base = json_format.ParseDict(element, schema.request_class())
    except (json_format.ParseError, TypeError, ValueError):
        return None  # a template where the message wants no string: rendered whole per call
    return compile_fields(element, base, functions=functions)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LoadError(
            f"{where}: the rendered template is not JSON ({exc}): {text[:60]!r}"
        ) from None


def _serialize(schema: MethodSchema, value: Any, where: str) -> bytes:
    name = schema.request_class.DESCRIPTOR.full_name
    if not isinstance(value, dict):
        raise LoadError(f"{where} does not match {name}: expected a JSON object")
    try:
        message = json_format.ParseDict(value, schema.request_class())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(f"{where} does not match {name}: {detail}") from None
    return bytes(message.SerializeToString())


def _binary(schema: MethodSchema, data: bytes) -> tuple[bytes, ...]:
    """ghz: length-delimited messages if that parses to at least one, else one message."""
    messages = _delimited(schema, data)
    if messages:
        return messages
    try:
        schema.request_class.FromString(data)
    except DecodeError as exc:
        name = schema.request_class.DESCRIPTOR.full_name
        raise LoadError(f"binary data does not match {name}: {exc}") from None
    return (data,)


def _delimited(schema: MethodSchema, data: bytes) -> tuple[bytes, ...]:
    out: list[bytes] = []
    position = 0
    try:
        while position < len(data):
            size, start = _DecodeVarint(data, position)
            end = start + size
            if end > len(data):
                return ()
            schema.request_class.FromString(data[start:end])
            out.append(data[start:end])
            position = end
    except (DecodeError, IndexError):
        return ()
    return tuple(out)


def _metadata(value: Any) -> Metadata:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise LoadError('metadata: expected a JSON object of strings, e.g. {"key": "value"}')
    out: list[tuple[str, str | bytes]] = []
    for key, text in value.items():
        name = key.lower()
        if not _METADATA_KEY.match(name):
            raise LoadError(f"metadata: invalid key {key!r} (letters, digits, '-', '_', '.')")
        if name.endswith("-bin"):
            try:
                out.append((name, base64.b64decode(text, validate=True)))
            except binascii.Error:
                raise LoadError(f"metadata: {key!r} ends in -bin but is not base64") from None
        else:
            out.append((name, text))
    return tuple(out)
