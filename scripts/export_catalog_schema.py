"""Write clients/js/catalog.schema.json: the server's event catalog and commands as JSON Schema.

    uv run python scripts/export_catalog_schema.py            # print the schema
    uv run python scripts/export_catalog_schema.py --write    # rewrite the file

The TypeScript client's types are generated from that file (`npm run generate` in clients/js,
with json-schema-to-typescript), so they follow the server, not a hand-kept copy:

- every entity an event payload carries (`bugstream.domain.catalog.CATALOG`), in the form the
  server sends it (pydantic's serialization schema);
- one event per (type, event) pair of the catalog, `{type, event, payload, event_id}`, and
  `BugstreamEvent`, their union (discriminated by `type` and `event`);
- `BugstreamCommands`: per command of `bugstream.gateway.commands.COMMANDS`, its `payload`
  (the input model, validation schema: fields with defaults are optional) and its `result`.

tests/client/test_js_package.py fails when the committed file differs from what this prints,
and when the generated TypeScript differs from what `npm run generate` makes of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bugstream.domain.catalog import CATALOG
from bugstream.gateway.commands import COMMANDS

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "clients" / "js" / "catalog.schema.json"
REF = "#/$defs/{model}"
Mode = Literal["validation", "serialization"]


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _untitled(node: Any, *, keep: bool) -> Any:
    """The schema without pydantic's per-property `title`s (json-schema-to-typescript would
    make a type alias of each: `type Title = string`); models and enums keep theirs."""
    if isinstance(node, list):
        return [_untitled(item, keep=False) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and not keep:
            continue
        if key == "$defs":
            out[key] = {name: _untitled(d, keep=True) for name, d in value.items()}
        elif key == "properties":
            out[key] = {name: _untitled(_lone_ref(p), keep=False) for name, p in value.items()}
        else:
            out[key] = _untitled(value, keep=False)
    return out


def _lone_ref(prop: Any) -> Any:
    """A `$ref` with a sibling (`{"$ref": Priority, "default": "medium"}`) as `anyOf` of the
    one reference: json-schema-to-typescript would copy the enum as a new type (`Priority1`)."""
    if isinstance(prop, dict) and "$ref" in prop and len(prop) > 1:
        rest = {k: v for k, v in prop.items() if k != "$ref"}
        return {"anyOf": [{"$ref": prop["$ref"]}], **rest}
    return prop


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _closed(title: str, properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def catalog_schema() -> dict[str, Any]:
    entities: list[tuple[type[BaseModel], Mode]] = [
        (m.payload, "serialization") for m in CATALOG.values()
    ]
    models = dict.fromkeys(entities)
    for spec in COMMANDS.values():
        models.setdefault((spec.payload, "validation"))
        models.setdefault((spec.result, "serialization"))
    _, pydantic_schema = models_json_schema(list(models), ref_template=REF)
    defs: dict[str, Any] = dict(pydantic_schema["$defs"])

    events: list[dict[str, str]] = []
    for event_type, meaning in CATALOG.items():
        for name in meaning.events:
            title = _pascal(event_type) + _pascal(name) + "Event"
            defs[title] = _closed(
                title,
                {
                    "type": {"const": event_type.value},
                    "event": {"const": name.value},
                    "payload": _ref(meaning.payload),
                    "event_id": {"type": "integer", "minimum": 1},
                },
                f"`{event_type}` `{name}`: the payload is a {meaning.payload.__name__}.",
            )
            events.append({"$ref": REF.format(model=title)})
    defs["BugstreamEvent"] = {
        "title": "BugstreamEvent",
        "description": "Every event of the catalog (discriminated by `type` and `event`).",
        "oneOf": events,
    }
    defs["BugstreamCommands"] = _closed(
        "BugstreamCommands",
        {
            command.value: {
                "type": "object",
                "properties": {"payload": _ref(spec.payload), "result": _ref(spec.result)},
                "required": ["payload", "result"],
                "additionalProperties": False,
            }
            for command, spec in COMMANDS.items()
        },
        "Per command: its payload, and the `result` its ack carries.",
    )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "BugstreamCatalog",
        "description": (
            "Generated by scripts/export_catalog_schema.py from bugstream.domain.catalog and "
            "bugstream.gateway.commands: do not edit by hand."
        ),
        "type": "object",
        "properties": {
            "event": {"$ref": REF.format(model="BugstreamEvent")},
            "commands": {"$ref": REF.format(model="BugstreamCommands")},
        },
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }
    result: dict[str, Any] = _untitled(schema, keep=True)
    return result


def render() -> str:
    return json.dumps(catalog_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {DEFAULT_OUT.name}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
