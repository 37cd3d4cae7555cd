"""A small JSON Schema checker (the draft-07 keywords tests/fixtures/open311 uses) and the
reading of an Open311 XML answer into the JSON shape its schema describes.

Keywords: type (one or a list), enum, pattern, format date-time (a zone required, as the
spec asks), minLength, minimum, maximum, required, properties, additionalProperties (false),
items, minItems, maxItems. An unknown keyword is an error, so a schema cannot silently ask
for something this checker does not do.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from core.config import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "tests" / "fixtures" / "open311"
KNOWN = {"title", "type", "enum", "pattern", "format", "minLength", "minimum", "maximum", "required",
         "properties", "additionalProperties", "items", "minItems", "maxItems", "xml"}
DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$")
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return loaded


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def problems(value: Any, sch: dict[str, Any], where: str = "$") -> list[str]:
    found: list[str] = []
    unknown = set(sch) - KNOWN
    if unknown:
        return [f"{where}: schema keyword(s) not supported here: {sorted(unknown)}"]
    kinds = sch.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: {value!r} is not of type {kinds}"]
    if value is None:
        return found
    if "enum" in sch and value not in sch["enum"]:
        found.append(f"{where}: {value!r} not in {sch['enum']}")
    if isinstance(value, str):
        if "pattern" in sch and not re.search(sch["pattern"], value):
            found.append(f"{where}: {value!r} does not match {sch['pattern']}")
        if sch.get("format") == "date-time" and not DATE_TIME.match(value):
            found.append(f"{where}: {value!r} is not an ISO 8601 date-time with a zone")
        if len(value) < sch.get("minLength", 0):
            found.append(f"{where}: {value!r} is too short")
    if _is(value, "number"):
        if "minimum" in sch and value < sch["minimum"]:
            found.append(f"{where}: {value} < {sch['minimum']}")
        if "maximum" in sch and value > sch["maximum"]:
            found.append(f"{where}: {value} > {sch['maximum']}")
    if isinstance(value, dict):
        props = sch.get("properties", {})
        found += [f"{where}: {key!r} is required" for key in sch.get("required", []) if key not in value]
        if sch.get("additionalProperties") is False:
            found += [f"{where}: {key!r} is not allowed" for key in value if key not in props]
        for key, child in value.items():
            if key in props:
                found += problems(child, props[key], f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < sch.get("minItems", 0):
            found.append(f"{where}: fewer than {sch['minItems']} items")
        if "maxItems" in sch and len(value) > sch["maxItems"]:
            found.append(f"{where}: more than {sch['maxItems']} items")
        for i, item in enumerate(value):
            found += problems(item, sch.get("items", {}), f"{where}[{i}]")
    return found


def check(value: Any, name: str) -> Any:
    """`value` (the JSON answer) if it fits schema `name`; AssertionError with every problem if not."""
    found = problems(value, schema(name))
    assert not found, "\n".join(found)
    return value


def _scalar(text: str | None, sch: dict[str, Any], where: str) -> Any:
    kinds = sch.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not text:
        if "null" in kinds:
            return None
        return "" if "string" in kinds else text
    if "boolean" in kinds and text in ("true", "false"):
        return text == "true"
    if "integer" in kinds and re.fullmatch(r"-?\d+", text):
        return int(text)
    if "number" in kinds and re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", text):
        return float(text)
    return text


def from_xml(body: bytes, name: str) -> Any:
    """The XML answer read into the JSON shape of schema `name` (element names checked as it
    goes); then checked against it."""
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>'), body[:60]
    root = ET.fromstring(body)
    sch = schema(name)
    assert root.tag == sch["xml"]["name"], (root.tag, sch["xml"]["name"])
    value = _read(root, sch, root.tag)
    return check(value, name)


def _read(element: ET.Element, sch: dict[str, Any], where: str) -> Any:
    kinds = sch.get("type")
    if kinds == "array":
        item = sch.get("items", {})
        expected = item.get("xml", {}).get("name")
        out = []
        for child in element:
            assert child.tag == expected, f"{where}: <{child.tag}> where <{expected}> belongs"
            out.append(_read(child, item, f"{where}/{child.tag}"))
        return out
    if kinds == "object":
        props = sch.get("properties", {})
        obj: dict[str, Any] = {}
        for child in element:
            assert child.tag not in obj, f"{where}: <{child.tag}> twice"
            obj[child.tag] = _read(child, props.get(child.tag, {}), f"{where}/{child.tag}")
        return obj
    assert len(element) == 0, f"{where}: a value, not elements"
    return _scalar(element.text, sch, where)


__all__ = ["check", "from_xml", "problems", "schema"]
