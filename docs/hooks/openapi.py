"""MkDocs hook: pages that are generated from the code at build time, so they cannot drift.

- `<!-- openapi -->` (in http-api.md) becomes the HTTP API: the FastAPI app is built with the
  default `ServeConfig` (it loads the shipped ONNX models) and `app.openapi()` is rendered as
  markdown: each path and method, its summary and description, query parameters, request body
  fields per content type, and responses.
- `<!-- train-options -->` (in training.md) becomes the table of `digitrec train` options,
  from the fields of `TrainConfig` (flag, default, help text), and `<!-- recipes -->` the
  fields each model's recipe in `config.RECIPES` sets.

No extra dependency and no network: only digitrec itself (with its serve and train extras).
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

METHODS = ("get", "post", "put", "patch", "delete")


def on_config(config):
    """Import digitrec from the repository's src/ when it is not installed."""
    src = str(Path(config.config_file_path).resolve().parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- openapi -->" in markdown:
        markdown = markdown.replace("<!-- openapi -->", openapi_markdown())
    if "<!-- train-options -->" in markdown:
        markdown = markdown.replace("<!-- train-options -->", train_options_markdown())
    if "<!-- recipes -->" in markdown:
        markdown = markdown.replace("<!-- recipes -->", recipes_markdown())
    return markdown


# ----------------------------------------------------------------------------- HTTP API

def openapi_markdown() -> str:
    from digitrec.serve.app import create_app
    from digitrec.serve.config import ServeConfig

    spec = create_app(ServeConfig()).openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    out = [f"*{spec['info']['title']} {spec['info']['version']}*: {spec['info'].get('description', '')}",
           "", "| method | path | what |", "|---|---|---|"]
    operations = [(path, method, op) for path, item in spec["paths"].items()
                  for method, op in item.items() if method in METHODS]
    for path, method, op in operations:
        out.append(f"| `{method.upper()}` | [`{path}`](#{anchor(method, path)}) | "
                   f"{cell(first_line(op.get('description') or op.get('summary', '')))} |")
    for path, method, op in operations:
        out += ["", f"## `{method.upper()} {path}` {{#{anchor(method, path)}}}", ""]
        out += [f"**{op.get('summary', '')}.** {op.get('description', '')}".strip(), ""]
        params = op.get("parameters", [])
        if params:
            out += ["**Parameters**", "", "| name | in | type | default | description |",
                    "|---|---|---|---|---|"]
            for p in params:
                schema = p.get("schema", {})
                described = p.get("description", schema.get("description", ""))
                out.append(f"| `{p['name']}` | {p['in']} | {type_of(schema, schemas)} | "
                           f"{default_of(schema)} | {cell(described)} |")
            out.append("")
        body = op.get("requestBody")
        if body:
            out += ["**Request body**" + (" (required)" if body.get("required") else ""), ""]
            for content_type, media in body.get("content", {}).items():
                out += body_markdown(content_type, media.get("schema", {}), schemas)
        out += ["**Responses**", "", "| status | description | body |", "|---|---|---|"]
        for status, response in op.get("responses", {}).items():
            types = ", ".join(f"`{t}`" + (f": {type_of(m['schema'], schemas)}" if m.get("schema") else "")
                              for t, m in response.get("content", {}).items())
            out.append(f"| {status} | {cell(response.get('description', ''))} | {types} |")
        out.append("")
    if schemas:
        out += ["## Schemas", ""]
        for name in schemas:
            out += [f"### `{name}` {{#schema-{name.lower()}}}", "",
                    schemas[name].get("description", ""), ""]
            out += fields_markdown(schemas[name], schemas)
    return "\n".join(out)


def anchor(method: str, path: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in path.strip("/")) or "root"
    return f"{method}-{slug}"


def first_line(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def resolve(schema: dict, schemas: dict) -> dict:
    ref = schema.get("$ref", "")
    return schemas.get(ref.rsplit("/", 1)[-1], schema) if ref else schema


def type_of(schema: dict, schemas: dict) -> str:
    """A short type name for a JSON schema: `integer`, `array of number`, `DigitBody`, ..."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#schema-{name.lower()})"
    if "anyOf" in schema:
        kinds = [type_of(s, schemas) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in schema["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    kind = schema.get("type", "")
    if kind == "array":
        size = schema.get("minItems")
        shape = f"{size} × " if size is not None and size == schema.get("maxItems") else ""
        return f"array ({shape}{type_of(schema.get('items', {}), schemas)})"
    if schema.get("format") == "binary":
        return "binary"
    extra = [f"{k} {schema[k]}" for k in ("minimum", "maximum") if k in schema]
    return (kind or "any") + (f" ({', '.join(extra)})" if extra else "")


def default_of(schema: dict) -> str:
    return f"`{json.dumps(schema['default'])}`" if "default" in schema else ""


def fields_markdown(schema: dict, schemas: dict) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return [f"{type_of(schema, schemas)}", ""]
    required = set(schema.get("required", []))
    out = ["| field | type | description |", "|---|---|---|"]
    for name, prop in props.items():
        described = prop.get("description") or next(
            (s.get("description") for s in prop.get("anyOf", []) if s.get("description")), "")
        out.append(f"| `{name}`{' (required)' if name in required else ''} | "
                   f"{type_of(prop, schemas)} | {cell(described)} |")
    return [*out, ""]


def body_markdown(content_type: str, schema: dict, schemas: dict) -> list[str]:
    schema = resolve(schema, schemas)
    out = [f"`{content_type}`" + (f": {schema['description']}" if schema.get("description") else ""), ""]
    if schema.get("properties"):
        out += fields_markdown(schema, schemas)
    else:
        out += [f"{type_of(schema, schemas)}", ""]
    return out


# ----------------------------------------------------------------------------- training options

def train_options_markdown() -> str:
    from digitrec.config import TrainConfig
    from digitrec.options import flag_fields, flag_of

    out = ["| option | default | what it sets |", "|---|---|---|"]
    for f in flag_fields(TrainConfig):
        default = json.dumps(f.default) if isinstance(f.default, bool) else f.default
        shown = "" if default in ((), "") else f"`{default}`"
        out.append(f"| `{flag_of(f)}` | {shown} | {cell(f.metadata['help'])} |")
    return "\n".join(out)


def recipes_markdown() -> str:
    from digitrec.config import RECIPES, TrainConfig

    base = TrainConfig()
    out = ["| model | what its recipe sets (all else: the defaults in the options table below) |",
           "|---|---|"]
    for name, config in RECIPES.items():
        changed = [f"`--{f.name.replace('_', '-')} {getattr(config, f.name)}`" for f in fields(config)
                   if f.name != "model" and getattr(config, f.name) != getattr(base, f.name)]
        out.append(f"| `{name}` | {', '.join(changed) or 'the defaults'} |")
    return "\n".join(out)
