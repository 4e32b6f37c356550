from __future__ import annotations

from typing import Any

from tidegate.routing.cascade import CascadeRule
from tidegate.routing.jsonschema import first_error


def response(content: Any = "Paris.", finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ]
    }


rule = CascadeRule("light", "strong")
plain = {"messages": [{"role": "user", "content": "capital of France?"}]}


def test_good_answer_passes() -> None:
    assert rule.failed(plain, response()) is None


def test_empty_and_whitespace() -> None:
    assert rule.failed(plain, response("")) == "empty"
    assert rule.failed(plain, response("  \n")) == "empty"
    assert rule.failed(plain, response(None)) == "empty"
    assert rule.failed(plain, {"choices": []}) == "empty"
    assert rule.failed(plain, {}) == "empty"
    calls = response(None, "tool_calls", tool_calls=[{"id": "1", "type": "function"}])
    assert rule.failed(plain, calls) is None


def test_length() -> None:
    assert rule.failed(plain, response("Paris is the capital and", "length")) == "length"


def test_refusals_and_i_dont_know() -> None:
    for text in (
        "I don't know.",
        "I'm not sure about that, sorry.",
        "I cannot help with that request.",
        "As an AI language model, I have no opinion.",
        "I'm sorry, but I can't answer that.",
        "Hmm, I do not have enough information to say.",
    ):
        assert rule.failed(plain, response(text)) == "refusal", text
    assert (
        CascadeRule("a", "b", ["refusal"]).failed(plain, response(None, refusal="no")) == "refusal"
    )
    long_answer = "Paris. " * 60 + "Some say I don't know the rest."
    assert rule.failed(plain, response(long_answer)) is None


def test_custom_refusal_patterns_and_check_subset() -> None:
    custom = CascadeRule("a", "b", ["refusal"], refusal_patterns=[r"\bno idea\b"])
    assert custom.failed(plain, response("No idea, honestly.")) == "refusal"
    assert custom.failed(plain, response("")) is None  # "empty" not configured


schema_body = {
    **plain,
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "population": {"type": "integer", "minimum": 0},
                },
                "required": ["city", "population"],
                "additionalProperties": False,
            },
        },
    },
}


def test_json_schema_check() -> None:
    assert rule.failed(schema_body, response('{"city": "Paris", "population": 2100000}')) is None
    assert rule.failed(schema_body, response('{"city": "Paris"}')) == "json_schema"
    assert (
        rule.failed(schema_body, response('{"city": "Paris", "population": -1}')) == "json_schema"
    )
    assert (
        rule.failed(schema_body, response('{"city": "Paris", "population": 1, "x": 1}'))
        == "json_schema"
    )
    assert (
        rule.failed(schema_body, response('```json\n{"city": "Paris", "population": 1}\n```'))
        == "json_schema"
    )
    assert rule.failed(schema_body, response("Paris has 2.1M people")) == "json_schema"


def test_json_object_mode() -> None:
    body = {**plain, "response_format": {"type": "json_object"}}
    assert rule.failed(body, response('{"a": 1}')) is None
    assert rule.failed(body, response("[1, 2]")) == "json_schema"
    assert rule.failed({**plain, "response_format": {"type": "text"}}, response("[1]")) is None


def test_schema_subset() -> None:
    schema = {
        "$defs": {
            "item": {"type": "object", "properties": {"n": {"enum": [1, 2]}}, "required": ["n"]}
        },
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/$defs/item"},
                "minItems": 1,
                "maxItems": 2,
            },
            "tag": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
            "flag": {"type": "boolean"},
            "score": {"type": "number", "maximum": 1},
            "kind": {"const": "x"},
        },
    }
    assert (
        first_error(
            {"items": [{"n": 1}], "tag": None, "flag": True, "score": 0.5, "kind": "x"}, schema
        )
        is None
    )
    assert first_error({"items": []}, schema) == "$.items: expected at least 1 items, got 0"
    assert (
        first_error({"items": [{"n": 3}]}, schema) == "$.items[0].n: expected one of [1, 2], got 3"
    )
    assert first_error({"items": [{}]}, schema) == "$.items[0]: missing required property `n`"
    assert first_error({"tag": "long"}, schema) is not None
    assert first_error({"flag": 1}, schema) == "$.flag: expected boolean, got integer"
    assert first_error({"score": 2}, schema) == "$.score: expected <= 1, got 2"
    assert first_error({"kind": "y"}, schema) is not None
    assert first_error(True, {"type": "integer"}) == "$: expected integer, got boolean"
    assert first_error(2.0, {"type": "integer"}) is None
    assert first_error(1, {"oneOf": [{"type": "integer"}, {"type": "number"}]}) is not None
    assert first_error("x", {"$ref": "https://example.com/remote"}) is None
