"""README's configuration tables are the settings' documentation: every variable the loader
reads is in them with its default, under the heading of the module that declares it, and
every variable in them is one the loader reads."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from chat_service.config import Settings, load_settings
from chat_service.envconfig import format_default, variables

README = Path(__file__).resolve().parents[2] / "README.md"

# Variables README documents that no settings field reads, and why.
READ_ELSEWHERE = {
    # Read by telemetry/tracing.py and by the OTLP exporter itself (with its other OTEL_*).
    "OTEL_EXPORTER_OTLP_ENDPOINT",
}
# Defaults README writes for people rather than as the code's value.
WRITTEN_FOR_PEOPLE = {
    "POD_NAME": "hostname",  # load_settings() uses the host name; a given mapping "chat-local"
    "ATTACHMENT_ALLOWED_TYPES": "png, jpeg, gif, webp, pdf, text, zip",  # subtypes, shortened
}
_ROW_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`(?:\s*\[([^\]]*)\])?")
# "### Presence (`presence/settings.py`: PresenceSettings)": the module the rows below declare.
_HEADING = re.compile(r"^### .*\(`([a-z_/]+\.py)`")
PACKAGE = "chat_service"


def _rows() -> Iterator[tuple[str, str]]:
    """(the module its heading names, row) for each row of README's "## Configuration"."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    module = ""
    for line in section.splitlines():
        heading = _HEADING.match(line)
        if heading:
            module = heading.group(1)
        elif line.startswith("| `"):
            yield module, line


def readme_table() -> dict[str, str | None]:
    """Variable -> default as README's "## Configuration" tables write it (None: no
    brackets). Only a row's first cell names variables; `0: off` reads as `0`."""
    table: dict[str, str | None] = {}
    for _, line in _rows():
        for name, default in _ROW_NAME.findall(line.split(" | ")[0]):
            table[name] = default.split(":")[0] if default else None
    return table


def readme_modules() -> dict[str, str]:
    """Variable -> the module named by the heading README lists it under."""
    return {
        name: module
        for module, line in _rows()
        for name, _ in _ROW_NAME.findall(line.split(" | ")[0])
    }


def declaring_modules(cls: type) -> Iterator[tuple[str, str]]:
    """(variable, source file of the dataclass declaring it, relative to the package)."""
    source = sys.modules[cls.__module__].__file__
    assert source is not None
    relative = Path(source).as_posix().rsplit(f"/{PACKAGE}/", 1)[1]
    for f in dataclasses.fields(cls):
        if "group" in f.metadata:
            yield from declaring_modules(f.default_factory)  # type: ignore[arg-type]
        elif "env" in f.metadata:
            yield f.metadata["env"], relative


def test_every_variable_the_loader_reads_is_documented_with_its_default() -> None:
    documented = readme_table()
    for v in variables(Settings):
        assert v.name in documented, f"{v.name} ({v.path}) is missing from README's table"
        written = documented[v.name]
        expected = WRITTEN_FOR_PEOPLE.get(v.name, format_default(v))
        if written is None or written == "unset":
            assert expected == "", f"README gives no default for {v.name}, the code {expected!r}"
        else:
            assert written == expected, f"README: {v.name} [{written}], the code: {expected!r}"


def test_every_documented_variable_is_read_by_the_loader() -> None:
    declared = {v.name for v in variables(Settings)}
    assert set(readme_table()) - READ_ELSEWHERE == declared


def test_each_variable_is_documented_under_the_module_that_declares_it() -> None:
    documented = readme_modules()
    declared = dict(declaring_modules(Settings))
    assert "config.py" not in declared.values(), "config.py only composes the groups"
    wrong = {
        name: f"README: {documented[name] or 'no heading'}, declared in {module}"
        for name, module in declared.items()
        if documented.get(name) != module
    }
    assert wrong == {}


def test_each_variable_sets_one_field() -> None:
    names = [v.name for v in variables(Settings)]
    assert len(names) == len(set(names))


class Recording(Mapping[str, str]):
    """An empty environment that remembers which variables were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._values[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the loader looks variables up by name, never lists them")

    def __len__(self) -> int:
        return len(self._values)


def test_the_loader_asks_for_exactly_the_declared_variables() -> None:
    env = Recording({"JWT_SECRET": "x"})
    load_settings(env)
    assert env.asked == {v.name for v in variables(Settings)}


def test_unset_variables_leave_every_field_at_its_default() -> None:
    s = load_settings({"JWT_SECRET": "x"})
    assert s == Settings(jwt=s.jwt)
    assert s.jwt.secret == "x"
