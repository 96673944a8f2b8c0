"""Registries of named things (datasets, models) that installed plug-ins extend.

A plug-in is an entry point, declared by any installed distribution, in the registry's group:

    [project.entry-points."digitrec.datasets"]
    my-digits = "my_package.data:MY_DIGITS"    # a DatasetSpec whose name is my-digits

    [project.entry-points."digitrec.models"]
    tiny = "my_package.models:tiny"             # a model factory, as `register_model` takes

The entry point's name is the registered name, so names are listed from installed metadata
without importing any plug-in; the object it points at is imported the first time its name is
looked up, then registered as if in code (its module may also register it, as the same object).
Plug-ins are looked for once, on the first lookup or listing, never at import: `import digitrec`
and `digitrec predict` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from .errors import DigitrecError, RegistryError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")


def describe(entry_point: EntryPoint) -> str:
    """An entry point as its author declared it, with the distribution that declares it."""
    dist = getattr(entry_point, "dist", None)
    source = f" of {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{entry_point.name} = {entry_point.value}' in {entry_point.group}{source}"


class Registry(Generic[T]):
    """Things of one kind by name, registered in code or declared by plug-ins; a name is
    taken once (a second registration is a RegistryError naming both owners)."""

    def __init__(self, kind: str, group: str, check: Callable[[str, object], str | None],
                 unknown: type[DigitrecError]) -> None:
        self.kind, self.group, self.unknown = kind, group, unknown
        self.check = check  # what is wrong with a plug-in's object for a name, or None
        self.entries: dict[str, T] = {}
        self.owners: dict[str, str] = {}
        self._plugins: dict[str, EntryPoint] | None = None  # not yet loaded; None: not looked for

    def register(self, name: str, value: T, owner: str) -> T:
        """Add `value` as `name`; `owner` (a module, an entry point) is named if it clashes."""
        self._claim(name, owner)
        self.entries[name] = value
        self.owners[name] = owner
        return value

    def names(self) -> list[str]:
        """Registered names in order of registration, then the plug-ins' names, sorted."""
        return [*self.entries, *sorted(self.plugins())]

    def get(self, name: str) -> T:
        """What is registered as `name`, loading its plug-in on first use."""
        if name not in self.entries:
            plugins = self.plugins()
            if name not in plugins:
                raise self.unknown(
                    f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
            entry_point = plugins.pop(name)  # so that its import may register it itself
            try:
                value = self.load(entry_point)
            except RegistryError:
                plugins[name] = entry_point  # the next lookup fails the same way
                raise
            if self.entries.get(name) is not value:
                self.register(name, value, describe(entry_point))
        return self.entries[name]

    def plugins(self) -> dict[str, EntryPoint]:
        """The group's entry points not loaded yet, looked for on the first call."""
        if self._plugins is None:
            from importlib.metadata import entry_points  # slow to import: only when plug-ins are asked for

            self._plugins = {}
            try:
                for entry_point in entry_points(group=self.group):
                    self._claim(entry_point.name, describe(entry_point))
                    self._plugins[entry_point.name] = entry_point
            except RegistryError:
                self._plugins = None  # the clash is reported again on the next lookup
                raise
        return self._plugins

    def load(self, entry_point: EntryPoint) -> T:
        """Import the object an entry point names; any failure is a RegistryError naming it."""
        try:
            value = entry_point.load()
        except Exception as e:  # a plug-in's import can fail in any way: say which one failed
            raise RegistryError(f"{describe(entry_point)} cannot be loaded: "
                                f"{type(e).__name__}: {e}") from e
        problem = self.check(entry_point.name, value)
        if problem:
            raise RegistryError(f"{describe(entry_point)} {problem}")
        return value

    def _claim(self, name: str, owner: str) -> None:
        """Fail if `name` is registered or declared already."""
        plugin = (self._plugins or {}).get(name)
        taken = self.owners[name] if name in self.entries else plugin and describe(plugin)
        if taken:
            raise RegistryError(f"{self.kind} {name!r} is registered twice: by {taken} and by {owner}")
