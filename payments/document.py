"""A YAML document read node by node with its positions, so every configuration error names the
file, the line and the dotted field it is about.

PyYAML's ``compose`` keeps ``start_mark`` on every node but ``safe_load`` throws it away, and it
resolves scalars by YAML 1.1 rules (``03`` is an octal int, ``no`` a bool). Reading the composed
tree keeps the line numbers and the scalar's own text, so codes such as ``03`` or ``1A`` stay
strings whether or not the author quoted them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

from forestgate.payments.errors import ConfigError

_NULL = "tag:yaml.org,2002:null"


class Node:
    """One YAML node, the file it came from and its dotted field path."""

    __slots__ = ("_key_line", "_node", "field", "path")

    def __init__(
        self, node: yaml.Node, *, path: Path, field: str, key_line: int | None = None
    ) -> None:
        self._node = node
        self.path = path
        self.field = field
        self._key_line = key_line

    @property
    def line(self) -> int:
        """1-based line of the node's key when it has one (``guardrail:``), else of its start."""
        if self._key_line is not None:
            return self._key_line
        return int(self._node.start_mark.line) + 1

    def error(self, message: str) -> ConfigError:
        """A ConfigError located at this node."""
        return ConfigError(message, path=self.path, line=self.line, field=self.field or "<root>")

    def _child(self, node: yaml.Node, key: str, key_line: int) -> Node:
        field = f"{self.field}.{key}" if self.field else key
        return Node(node, path=self.path, field=field, key_line=key_line)

    def is_null(self) -> bool:
        return isinstance(self._node, yaml.ScalarNode) and self._node.tag == _NULL

    def items(self) -> list[tuple[str, Node]]:
        """The entries of a mapping with free keys, in file order; duplicate keys are an error."""
        if not isinstance(self._node, yaml.MappingNode):
            raise self.error("expected a mapping")
        seen: dict[str, int] = {}
        out: list[tuple[str, Node]] = []
        for key_node, value_node in self._node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise Node(key_node, path=self.path, field=self.field).error(
                    "mapping keys must be scalars"
                )
            key = str(key_node.value)
            key_line = int(key_node.start_mark.line) + 1
            child = self._child(value_node, key, key_line)
            if key in seen:
                raise child.error(f"duplicate key {key!r} (first on line {seen[key]})")
            seen[key] = key_line
            out.append((key, child))
        return out

    def fields(
        self, *, required: Iterable[str] = (), optional: Iterable[str] = ()
    ) -> dict[str, Node]:
        """The entries of a mapping with a fixed schema: unknown or missing fields are errors."""
        required = tuple(required)
        allowed = set(required) | set(optional)
        entries = self.items()
        for key, child in entries:
            if key not in allowed:
                raise child.error(
                    f"unknown field {key!r}; expected one of {', '.join(sorted(allowed))}"
                )
        present = dict(entries)
        for key in required:
            if key not in present:
                raise self.error(f"missing field {key!r}")
        return present

    def sequence(self) -> list[Node]:
        if not isinstance(self._node, yaml.SequenceNode):
            raise self.error("expected a list")
        return [
            Node(n, path=self.path, field=f"{self.field}[{i}]")
            for i, n in enumerate(self._node.value)
        ]

    def text(self) -> str:
        """A scalar's own text (not YAML 1.1's reading of it)."""
        if not isinstance(self._node, yaml.ScalarNode) or self.is_null():
            raise self.error("expected a scalar value")
        return str(self._node.value)

    def texts(self) -> list[str]:
        """A list of scalars as text; duplicates are an error."""
        out: list[str] = []
        for item in self.sequence():
            value = item.text()
            if value in out:
                raise item.error(f"{value!r} listed twice")
            out.append(value)
        return out

    def integer(self, *, minimum: int | None = None) -> int:
        text = self.text()
        try:
            value = int(text, 10)
        except ValueError:
            raise self.error(f"expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise self.error(f"must be >= {minimum}, got {value}")
        return value

    def decimal(self, *, minimum: Decimal | None = None, what: str = "value") -> Decimal:
        """A number read from its text, never through a float."""
        text = self.text()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise self.error(f"expected a number, got {text!r}") from None
        if not value.is_finite():
            raise self.error(f"expected a finite number, got {text!r}")
        if minimum is not None and value < minimum:
            raise self.error(f"{what} must be >= {minimum}, got {text}")
        return value

    def boolean(self) -> bool:
        text = self.text().lower()
        if text in ("true", "yes"):
            return True
        if text in ("false", "no"):
            return False
        raise self.error(f"expected true or false, got {self.text()!r}")

    def date(self) -> dt.date:
        text = self.text()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise self.error(f"expected a date YYYY-MM-DD, got {text!r}") from None


def read(path: Path) -> Node:
    """Parse one YAML file into its root Node; syntax errors name the file and line."""
    try:
        with path.open(encoding="utf-8") as stream:
            root = yaml.compose(stream, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise ConfigError(
            f"cannot read: {exc.strerror}", path=path, line=None, field="<file>"
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = int(mark.line) + 1 if mark is not None else None
        raise ConfigError(
            f"not valid YAML: {exc.problem}", path=path, line=line, field="<syntax>"
        ) from exc
    if root is None:
        raise ConfigError("empty file", path=path, line=None, field="<root>")
    return Node(root, path=path, field="")
