"""Typed, frozen configs: built from defaults, a TOML file and `key=value` overrides.

Every learner has one frozen dataclass whose fields carry a type, a default and a docstring
(a string literal after the field). Unknown keys are errors that name the closest valid key;
values are converted to the field's type or refused with the expected type named.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomllib

C = TypeVar("C")


class ConfigError(ValueError):
    """A config key or value that the learner's config does not accept."""


class MissingExtraError(ImportError):
    """What was asked for needs an optional dependency that is not installed; the message
    says which extra installs it (the CLI prints it as one line, not a traceback)."""


def closest(name: str, choices: typing.Iterable[str], n: int = 3) -> list[str]:
    """The choices most similar to `name` (for 'did you mean' messages)."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)


def _did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    near = closest(name, choices)
    return f"; did you mean {' or '.join(near)}?" if near else ""


def _convert(cls_name: str, field: dataclasses.Field, value: Any, hints: dict) -> Any:
    kind = hints[field.name]
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{cls_name}.{field.name}={value!r}: expected one of {list(args)}")
        return value
    if type(None) in args:  # Optional[X]
        if value is None or value == "none":
            return None
        kind = next(a for a in args if a is not type(None))
    if kind is bool and isinstance(value, bool):
        return value
    if kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(f"{cls_name}.{field.name}", kind, value)
    if kind is str and isinstance(value, str):
        return value
    if dataclasses.is_dataclass(kind) and isinstance(value, dict):
        base = field.default  # keys not given keep the outer config's default for this field
        start = dataclasses.asdict(base) if dataclasses.is_dataclass(base) else {}
        return build_config(kind, {**start, **value})
    if dataclasses.is_dataclass(kind) and isinstance(value, kind):
        return value
    if typing.get_origin(kind) is tuple and isinstance(value, (list, tuple)):
        return _tuple(f"{cls_name}.{field.name}", typing.get_args(kind), value)
    raise ConfigError(
        f"{cls_name}.{field.name}={value!r}: expected {getattr(kind, '__name__', kind)}"
    )


def _number(name: str, kind: type, value: float) -> float:
    """`value` as `kind` (int or float): NaN refused, and for an int a value that is not a
    whole finite number."""
    if math.isnan(value) or (kind is int and not (math.isfinite(value) and value == int(value))):
        raise ConfigError(f"{name}={value!r}: expected {'an int' if kind is int else 'a number'}")
    return kind(value)


def _tuple(name: str, args: tuple, value: list | tuple) -> tuple:
    """`value` as the tuple type with type arguments `args` (`(int, ...)`, `(str, float)`):
    each element checked (numbers converted), the length too when it is fixed."""
    kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
    if len(kinds) != len(value) and args:
        raise ConfigError(f"{name}={value!r}: expected {len(kinds)} values")
    out = []
    for kind, item in zip(kinds, value):
        if kind in (int, float) and isinstance(item, (int, float)) and not isinstance(item, bool):
            item = _number(f"{name} element", kind, item)
        elif kind in (int, float, str, bool) and not isinstance(item, kind):
            raise ConfigError(f"{name}={value!r}: expected {kind.__name__} values, got {item!r}")
        out.append(item)
    return tuple(out) if args else tuple(value)


def _parse_value(text: str) -> Any:
    """Parse the right side of `key=value`: a Python/TOML literal, else the bare string."""
    lowered = {"true": True, "false": False}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(pairs: typing.Sequence[str]) -> dict[str, Any]:
    """Turn `["lr=3e-4", "hidden=(64, 64)"]` into a dict, refusing items without '='."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        out[key.strip()] = _parse_value(value.strip())
    return out


def build_config(cls: type[C], values: dict[str, Any] | None = None) -> C:
    """Make `cls` from `values`, naming the closest valid key for any unknown one."""
    values = _nest(dict(values or {}))
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"{cls.__name__} has no key {key!r}{_did_you_mean(key, fields)} "
                f"(valid keys: {', '.join(fields)})"
            )
        kwargs[key] = _convert(cls.__name__, fields[key], value, hints)
    config = cls(**kwargs)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def check_fields(config: Any, checks: typing.Iterable[tuple[str, bool, str]]) -> None:
    """Raise ConfigError naming the first `(field, ok, expected)` whose `ok` is False."""
    for name, ok, want in checks:
        if not ok:
            owner = type(config).__name__
            raise ConfigError(f"{owner}.{name}={getattr(config, name)!r}: expected {want}")


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    """`{"search.simulations": 8}` -> `{"search": {"simulations": 8}}` (merged with a table)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        head, dot, rest = key.partition(".")
        if not dot:
            out[key] = {**out[key], **value} if isinstance(out.get(key), dict) else value
            continue
        inner = out.setdefault(head, {})
        if not isinstance(inner, dict):
            raise ConfigError(f"{key!r} sets a field of {head!r}, which is not a table")
        inner.update(_nest({rest: value}))
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, with a clear error for a missing or malformed one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as plain TOML-safe values (tuples become lists, nested configs tables)."""
    return _plain(dataclasses.asdict(config))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out[key] = _plain(value)
        elif value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right after it in the class body, or in
    the body of the base class that declares it)."""
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # base classes first: a subclass's doc wins
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            is_doc = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
            if isinstance(node, ast.AnnAssign) and is_doc and isinstance(nxt.value.value, str):
                docs[node.target.id] = nxt.value.value.strip()  # type: ignore[attr-defined]
    return docs
