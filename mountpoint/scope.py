"""The names a directory was reached by: what a handler finds its object with."""

from collections.abc import Iterator, Mapping


class Scope(Mapping[str, str]):
    """The names a directory was reached by, e.g. {"ns": "default", "id": "web"}, and
    its path in the tree (which keys its `err` line)."""

    __slots__ = ("_values", "path")

    def __init__(self, path: tuple[str, ...] = (), values: Mapping[str, str] | None = None):
        self.path = path
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def child(self, name: str, param: str | None = None, value: str | None = None) -> "Scope":
        values = dict(self._values)
        if param is not None:
            values[param] = name if value is None else value
        return Scope((*self.path, name), values)

    def __repr__(self) -> str:
        return f"Scope({'/'.join(self.path)!r}, {self._values!r})"
