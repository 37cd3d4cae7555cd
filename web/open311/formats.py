"""Open311's two formats: JSON as the spec's examples, and XML with the spec's element names.

In XML a list is an element holding one element per item (services → service, attributes →
attribute, values → value, endpoints → endpoint, formats → format, service_requests →
request, errors → error); None is an empty element, booleans are true/false. Every answer is
UTF-8, the XML with its declaration.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

from sanic import response
from sanic.response import HTTPResponse

FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
ITEMS = {"services": "service", "attributes": "attribute", "values": "value", "endpoints": "endpoint",
         "formats": "format", "service_requests": "request", "errors": "error"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(name: str, value: Any) -> ET.Element:
    element = ET.Element(name)
    if isinstance(value, dict):
        for key, child in value.items():
            element.append(_element(key, child))
    elif isinstance(value, list):
        item = ITEMS.get(name, "item")
        for child in value:
            element.append(_element(item, child))
    elif value is not None:
        element.text = _text(value)
    return element


def to_xml(root: str, value: Any) -> bytes:
    body: bytes = ET.tostring(_element(root, value), encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def render(fmt: str, root: str, value: Any, status: int = 200) -> HTTPResponse:
    """`value` as `fmt`; `root` names the XML's root element (the JSON has none)."""
    if fmt == "json":
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        body = to_xml(root, value)
    return response.raw(body, status=status, content_type=FORMATS[fmt])


def errors(fmt: str, status: int, *descriptions: str) -> HTTPResponse:
    """The spec's error answer: a list of {code, description}."""
    return render(fmt, "errors", [{"code": status, "description": d} for d in descriptions], status)
