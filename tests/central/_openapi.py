"""A small JSON Schema checker for the subset central/openapi.json uses (tests only).

Supports $ref, type (and type lists), enum, pattern, minimum/maximum, required,
properties, additionalProperties, propertyNames, items, minItems/maxItems.
"""

from __future__ import annotations

import re

__all__ = ["check", "response_schema"]

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _resolve(doc, schema):
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def check(doc: dict, schema: dict, value, where: str = "$") -> list[str]:
    """Return the list of violations (empty if ``value`` matches ``schema``)."""
    schema = _resolve(doc, schema)
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            return ["%s: %r is not %s" % (where, value, "/".join(types))]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r not in %s" % (where, value, schema["enum"]))
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append("%s: %r does not match %s" % (where, value, schema["pattern"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: %r < %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: %r > %r" % (where, value, schema["maximum"]))
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append("%s: missing %r" % (where, name))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if "propertyNames" in schema:
                errors += check(doc, schema["propertyNames"], key, "%s[key %r]" % (where, key))
            if key in props:
                errors += check(doc, props[key], item, "%s.%s" % (where, key))
            elif extra is False:
                errors.append("%s: unexpected key %r" % (where, key))
            elif isinstance(extra, dict):
                errors += check(doc, extra, item, "%s.%s" % (where, key))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append("%s: %d items out of bounds" % (where, len(value)))
        if "items" in schema:
            for i, item in enumerate(value):
                errors += check(doc, schema["items"], item, "%s[%d]" % (where, i))
    return errors


def response_schema(doc: dict, path: str, method: str, status: int) -> dict:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, "status %d of %s %s is not documented" % (status, method, path)
    content = responses[str(status)].get("content", {})
    return content.get("application/json", {}).get("schema", {})
