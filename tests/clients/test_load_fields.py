"""Templated string fields (clients/load/fields.py) send the very bytes that rendering the whole
JSON and parsing it would, and step aside whenever an action is anywhere else."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import pytest
from google.protobuf import json_format

from forestgate.clients.load import flags
from forestgate.clients.load import options as options_module
from forestgate.clients.load.data import build_inputs
from forestgate.clients.load.fields import compile_fields
from forestgate.clients.load.schema import MethodSchema
from forestgate.clients.load.template import CallData, MethodNames, Template
from forestgate.protos.forestgate.v1 import scoring_pb2 as spb
from forestgate.protos.inference import grpc_service_pb2 as ipb
from tests.clients.load_support import REPO

NAMES = MethodNames(
    "forestgate.v1.Scoring.Score", "Scoring", "Score", "ScoreRequest", "ScoreResponse"
)
SCORE = MethodSchema(
    "/forestgate.v1.Scoring/Score", NAMES, spb.ScoreRequest, client_streaming=False,
    server_streaming=False, descriptor_set=b"",
)  # fmt: skip


def whole_text(element: Any, message: type, n: int) -> bytes:
    """What `forestgate load` sent before fields.py: the whole JSON rendered, then parsed."""
    text = Template(json.dumps(element, separators=(",", ":"), ensure_ascii=False)).render(
        CallData(NAMES, "g0c0", n)
    )
    return bytes(json_format.ParseDict(json.loads(text), message()).SerializeToString())


def by_fields(element: Any, message: type, n: int) -> bytes | None:
    compiled = compile_fields(element, json_format.ParseDict(element, message()), functions=True)
    assert compiled is not None
    return compiled.render(CallData(NAMES, "g0c0", n))


STRING_FIELDS = [
    {"authorization_id": "a-{{.RequestNumber}}", "card": {"pan_hash": "h{{.RequestNumber}}x"}},
    # escapes, unicode and a quote beside the action, as JSON text has them
    {"authorization_id": 'q"\\{{.RequestNumber}}\u00e9\n', "payment_id": "{{.WorkerID}}"},
    # repeated strings and the JSON (camelCase) names
    {"candidateRoutes": ["A-US", "r{{.RequestNumber}}"], "authorizationId": "{{.MethodName}}"},
    # trimming markers and a function (randomInt 5 6 is always 5)
    {"authorization_id": "x {{- .RequestNumber -}} y", "payment_id": "{{randomInt 5 6}}"},
    # routes inside a repeated message
    {"declines": [{"route_id": "r{{.RequestNumber}}", "response_code": "05"}]},
]


@pytest.mark.parametrize("element", STRING_FIELDS)
def test_string_fields_render_to_the_same_bytes_as_the_whole_text(element):
    for n in (0, 1, 99, 123456789):
        assert by_fields(element, spb.ScoreRequest, n) == whole_text(element, spb.ScoreRequest, n)


OTHER_PLACES = [
    {"amount": {"amount_minor": "{{.RequestNumber}}"}},  # an int64 written as a string
    {"channel": "{{.MethodName}}"},  # an enum
    {"time": "2026-12-03T15:00:{{.RequestNumber}}Z"},  # a Timestamp
    {"{{.MethodName}}": "x"},  # a key
]


@pytest.mark.parametrize("element", OTHER_PLACES)
def test_an_action_outside_a_string_field_is_left_to_the_whole_text(element):
    try:
        base = json_format.ParseDict(element, spb.ScoreRequest())
    except json_format.ParseError:
        return  # not even parseable as written: build_inputs never compiles it
    assert compile_fields(element, base, functions=True) is None


def test_a_map_with_an_action_is_left_to_the_whole_text():
    element = {"model_name": "m", "parameters": {"k": {"string_param": "{{.RequestNumber}}"}}}
    base = json_format.ParseDict(element, ipb.ModelInferRequest())
    assert compile_fields(element, base, functions=True) is None


def test_the_decision_benchmarks_configs_use_string_fields_and_send_the_same_bytes():
    for config in sorted((REPO / "bench" / "ghz").glob("score-*.json")):
        parser = flags_parser()
        options = options_module.from_arguments(
            parser.parse_args(["--config", str(config)]), stdin=io.StringIO("")
        )
        inputs = build_inputs(options, SCORE)
        assert inputs.fields and all(f is not None for f in inputs.fields), config.name
        element = json.loads(config.read_text())["data"]
        for n in (0, 42):
            sent, _ = inputs.build(n, "g0c0")
            assert sent == whole_text(element, spb.ScoreRequest, n), config.name


def flags_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    return parser
