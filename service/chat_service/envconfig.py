"""Settings dataclasses read from environment variables: the field declares its variable.

A component's settings are a frozen dataclass next to its code whose fields say which
variable sets them and how it is parsed, and whose default is the field's default (written
once, here, for both the code and the loader):

    @dataclass(frozen=True)
    class GateSettings:
        preauth_max: int = var("PREAUTH_MAX_CALLS", 64)

`load(GateSettings, env)` reads every declared variable; a nested settings group is a field
with `metadata=GROUP`. This module imports nothing of the service, so every component (and
the domain) can use it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")
Parse = Callable[[str, str, Any], Any]  # (variable name, raw value, default) -> value


class ConfigError(ValueError):
    """A setting is missing or malformed (the message names the variable)."""


def var(name: str, default: Any, parse: Parse | None = None, **meta: Any) -> Any:
    """A field set by environment variable `name`; `parse` defaults to one for the default's
    type (int, float, bool: an empty value means the default; str: taken as it is). `meta`
    is kept in the field's metadata for the component's own use."""
    return dataclasses.field(default=default, metadata={"env": name, "parse": parse, **meta})


# The metadata of a nested settings dataclass, loaded with its own variables:
#     quotas: UploadQuotas = field(default_factory=UploadQuotas, metadata=GROUP)
GROUP: Mapping[str, Any] = MappingProxyType({"group": True})


# Parsers --------------------------------------------------------------------------------


def _numeric(convert: Callable[[str], float], noun: str, minimum: float | None) -> Parse:
    def parse(name: str, raw: str, default: Any) -> Any:
        raw = raw.strip()
        if not raw:
            return convert(default)
        try:
            value = convert(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be {noun}, got {raw!r}") from exc
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


def integer(minimum: int | None = None) -> Parse:
    return _numeric(int, "an integer", minimum)


def number(minimum: float | None = None) -> Parse:
    return _numeric(float, "a number", minimum)


def boolean(name: str, raw: str, default: Any) -> bool:
    raw = raw.strip().lower()
    if not raw:
        return bool(default)
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def text(name: str, raw: str, default: Any) -> str:
    return raw


def stripped(name: str, raw: str, default: Any) -> str:
    """Surrounding blanks dropped; empty means the default."""
    return raw.strip() or str(default)


def upper(name: str, raw: str, default: Any) -> str:
    return raw.upper()


def lower(name: str, raw: str, default: Any) -> str:
    return raw.lower()


def choice(*allowed: str) -> Parse:
    def parse(name: str, raw: str, default: Any) -> str:
        value = raw.strip().lower() or str(default)
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    return parse


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def identifier(name: str, raw: str, default: Any) -> str:
    """A lower-case SQL identifier (e.g. a PostgreSQL text-search configuration name)."""
    value = raw.strip().lower() or str(default)
    if not _IDENTIFIER.match(value):
        raise ConfigError(f"{name} must be a name like 'simple' or 'english', got {raw!r}")
    return value


def csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
_UNITS = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": KIB, "kb": KIB, "kib": KIB,
    "m": MIB, "mb": MIB, "mib": MIB,
    "g": GIB, "gb": GIB, "gib": GIB,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")


def byte_size(minimum: int) -> Parse:
    """A byte count: `26214400`, `25 MiB`, `2GiB` (binary units; KB, MB, GB mean the same)."""

    def parse(name: str, raw: str, default: Any) -> int:
        raw = raw.strip()
        if not raw:
            return int(default)
        match = _SIZE.match(raw.lower())
        if match is None or match.group(2) not in _UNITS:
            raise ConfigError(
                f"{name} must be a number of bytes (e.g. 26214400 or 25 MiB), got {raw!r}"
            )
        value = int(float(match.group(1)) * _UNITS[match.group(2)])
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum} bytes, got {value}")
        return value

    setattr(parse, "unit", "bytes")  # noqa: B010 - read by format_default
    return parse


_BY_TYPE: dict[type, Parse] = {int: integer(), float: number(), bool: boolean, str: text}


# Loading ----------------------------------------------------------------------------------


def load(cls: type[T], env: Mapping[str, str], **overrides: Any) -> T:
    """An instance of the settings dataclass `cls` from `env`; a variable that is not set
    leaves the field's default. `overrides` replace fields (groups loaded by hand)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif "group" in f.metadata:
            values[f.name] = load(f.default_factory, env)  # type: ignore[arg-type]
        elif "env" in f.metadata:
            name: str = f.metadata["env"]
            raw = env.get(name)
            if raw is not None:
                parse = f.metadata["parse"] or _BY_TYPE[type(f.default)]
                values[f.name] = parse(name, raw, f.default)
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    default: Any
    parse: Parse | None
    path: str  # dotted attribute path from the root settings


def variables(cls: type[Any], prefix: str = "") -> Iterator[Variable]:
    """Every variable that `cls` and its groups declare, in declaration order."""
    for f in dataclasses.fields(cls):
        if "group" in f.metadata:
            yield from variables(f.default_factory, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        elif "env" in f.metadata:
            yield Variable(f.metadata["env"], f.default, f.metadata["parse"], prefix + f.name)


def format_default(v: Variable) -> str:
    """How README's configuration table writes a default (`25 MiB`, `20`, `false`, `a, b`)."""
    value = v.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if getattr(v.parse, "unit", None) == "bytes" and value:
        for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
            if value % size == 0:
                return f"{value // size} {unit}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)
