"""Configuration dataclasses whose fields are command-line flags.

A field made with `option` carries its help text and, where the flag is not the field's name,
the flag's name, the unit it counts in and the field units per flag unit. `add_flags` makes
one argparse flag per such field and `from_flags` reads the values back, so each default is
written once, in the dataclass, and each check once, in its `__post_init__`.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, Field, field, fields
from typing import Any


def option(default: Any, help: str, *, flag: str = "", unit: str = "", scale: int = 1,
           metavar: str = "") -> Any:
    """A dataclass field that is a flag: `--FLAG` (default: the field's name with dashes)
    whose value times `scale` is the field's, counted in `unit`, shown in help as `metavar`."""
    return field(default=default, metadata={"help": help, "flag": flag, "unit": unit,
                                            "scale": scale, "metavar": metavar})


def flag_fields(config: type) -> list[Field]:
    """The fields of a configuration dataclass that are flags."""
    return [f for f in fields(config) if "help" in f.metadata]


def flag_of(f: Field) -> str:
    """The flag that sets a field."""
    return "--" + (f.metadata["flag"] or f.name.replace("_", "-"))


def _value_type(hint: Any) -> Any:
    """The type of one value: the item type of a tuple, the type inside an Optional."""
    args = [t for t in typing.get_args(hint) if t is not type(None) and t is not Ellipsis]
    return args[0] if args else hint


def _shown_default(f: Field) -> str:
    """The field's default in the flag's units, as help shows it ('' when there is none to show)."""
    if f.default in (MISSING, None, (), ""):
        return ""
    if isinstance(f.default, bool):
        return f" (default {'on' if f.default else 'off'})"
    value = _flag_value(f, f.default)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f" (default {text}{' ' + f.metadata['unit'] if f.metadata['unit'] else ''})"


def add_flags(parser: argparse.ArgumentParser, config: type,
              unset: str | None = None) -> dict[str, argparse.Action]:
    """One flag per flag field of `config`, by field name. Without `unset`, a flag's default
    is its field's (and help says it); with it, flags left out stay None (`from_flags` leaves
    them out) and help ends with `unset`, e.g. "(default: the model's recipe)"."""
    hints = typing.get_type_hints(config)
    actions = {}
    for f in flag_fields(config):
        hint = hints[f.name]
        if hint is bool:
            kind: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif typing.get_origin(hint) is tuple:  # a repeatable flag
            kind = {"action": "append", "type": _value_type(hint)}
        else:
            kind = {"type": float if f.metadata["scale"] != 1 else _value_type(hint)}
        if unset is not None:
            default, help = None, f"{f.metadata['help']} ({unset})"
        else:
            default = None if kind.get("action") == "append" else _flag_value(f, f.default)
            help = f.metadata["help"] + _shown_default(f)
        if "type" in kind:
            kind["metavar"] = f.metadata["metavar"] or flag_of(f)[2:].upper().replace("-", "_")
        actions[f.name] = parser.add_argument(flag_of(f), dest=f.name, default=default,
                                              help=help.replace("%", "%%"), **kind)
    return actions


def _flag_value(f: Field, value: Any) -> Any:
    """A field's value in its flag's units."""
    return value / f.metadata["scale"] if f.metadata["scale"] != 1 and value is not None else value


def _field_value(f: Field, value: Any) -> Any:
    """A flag's value in its field's units (lists of a repeated flag become tuples)."""
    if isinstance(value, list):
        return tuple(value)
    if f.metadata["scale"] != 1:
        return type(f.default)(value * f.metadata["scale"])
    return value


def from_flags(args: argparse.Namespace, config: type) -> dict[str, Any]:
    """The field values that the parsed flags give (flags that were left out and have no
    default are not in it)."""
    return {f.name: _field_value(f, value) for f in flag_fields(config)
            if (value := getattr(args, f.name, None)) is not None}
