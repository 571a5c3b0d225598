"""Job configs: one dataclass per job, loaded from a YAML recipe, any field overridable on the CLI.

Usage in a job entrypoint::

    cfg = parse_config(GenerateJobConfig, sys.argv[1:])  # --config recipe.yaml --max_depth 4

Every field is declared with :func:`option` (a default and a help string); ``--help`` lists them.
A field's value is checked by the dataclass's ``__post_init__``, which raises ``ValueError`` naming
the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["config_hash", "lookup", "option", "parse_config", "section"]

T = TypeVar("T")


def option(default: Any, help: str, hashed: bool = True) -> Any:  # noqa: A002 - mirrors argparse
    """A config field with a default and help text; ``hashed=False`` leaves it out of :func:`config_hash`."""
    return dataclasses.field(default=default, metadata={"help": help, "hashed": hashed})


def section(help: str) -> Any:  # noqa: A002 - mirrors argparse
    """A mapping field (a stage's config fields in a pipeline); ``--name '{key: value}'`` changes only those keys."""
    return dataclasses.field(default_factory=dict, metadata={"help": help, "hashed": True, "merge": True})


def lookup(registry: dict[str, T], name: str, field: str) -> T:
    """``registry[name]``, or a ``ValueError`` naming ``field`` and the valid names."""
    try:
        return registry[name]
    except KeyError as e:
        raise ValueError(f"{field} must be one of {sorted(registry)}, got {name!r}") from e


def config_hash(cfg: Any) -> str:
    """A 16-hex-digit hash of the fields that change results (not output paths or log levels)."""
    fields = dataclasses.fields(cfg)
    return stable_hash({f.name: getattr(cfg, f.name) for f in fields if f.metadata.get("hashed", True)})


def stable_hash(values: Any) -> str:
    """A 16-hex-digit hash of JSON-able ``values`` (keys sorted; other values by ``str``)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_config(cls: type[T], argv: list[str] | None = None) -> T:
    """Build ``cls`` from ``--config FILE.yaml`` then ``--field value`` overrides.

    A field whose metadata has ``merge: True`` is a section: ``--field '{key: value}'`` changes those keys of
    the recipe's mapping and keeps the rest.

    Raises:
        ValueError: unknown keys in the YAML, a value of the wrong type, or one ``__post_init__`` rejects.
    """
    parser = _parser(cls)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_yaml(cls, args.config))
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        raw = getattr(args, f.name)
        if raw is not None:
            value = _convert(f.name, raw, hints[f.name])
            if f.metadata.get("merge") and isinstance(value, dict) and isinstance(values.get(f.name), dict):
                value = {**values[f.name], **value}  # a section: the flag's keys over the recipe's
            values[f.name] = value
    return cls(**values)


def load_yaml(cls: type, path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML recipe into field values, rejecting keys ``cls`` does not have.

    A recipe may start from another: ``extends: other.yaml`` (relative to the recipe's folder) loads that
    one first; this recipe's fields replace its fields, except sections (``merge`` fields), whose keys are
    merged into the base's section.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"config: cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"config: {path} must hold a mapping of field: value")
    if "extends" in data:
        base_path = (path.parent / str(data.pop("extends"))).resolve()
        if base_path in _seen or len(_seen) > 8:
            raise ValueError(f"config: {path} extends {base_path}, which extends it back")
        base = load_yaml(cls, base_path, (*_seen, path.resolve()))
        return {**base, **_check_fields(cls, path, data, base)}
    return _check_fields(cls, path, data, {})


def _check_fields(cls: type, path: Path, data: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``data``'s values type-checked (unknown keys rejected); sections merged over ``base``'s."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config: unknown field(s) {unknown} in {path}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    merged = {f.name for f in dataclasses.fields(cls) if f.metadata.get("merge")}
    out = {k: _check_type(k, _float_or_str(v) if _floaty(v, hints[k]) else v, hints[k]) for k, v in data.items()}
    for k in merged & set(out) & set(base):
        if isinstance(out[k], dict) and isinstance(base[k], dict):
            out[k] = {**base[k], **out[k]}
    return out


def _parser(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--config", help="YAML recipe with field: value pairs; CLI flags override it")
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        parser.add_argument(
            f"--{f.name}", default=None, metavar="VALUE", help=f"{f.metadata.get('help', '')} [default: {default}]"
        )
    return parser


def _convert(name: str, raw: str, hint: Any) -> Any:
    """Parse a CLI string as YAML (so ``true``, ``3``, ``null``, ``[a, b]`` work) and type-check it."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if _allows(hint, str) and not isinstance(value, str) and value is not None and not _allows(hint, type(value)):
        value = raw  # a string field keeps what was typed ("007" stays "007")
    elif _floaty(value, hint):
        value = _float_or_str(value)
    return _check_type(name, value, hint)


def _floaty(value: Any, hint: Any) -> bool:
    """A string for a float field: YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    return isinstance(value, str) and _allows(hint, float) and not _allows(hint, str)


def _float_or_str(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def _allows(hint: Any, typ: type) -> bool:
    args = typing.get_args(hint) if _is_union(hint) else (hint,)
    return any(a is typ or typing.get_origin(a) is typ for a in args)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _check_type(name: str, value: Any, hint: Any) -> Any:
    allowed = typing.get_args(hint) if _is_union(hint) else (hint,)
    for typ in allowed:
        if typ is type(None) and value is None:
            return None
        base = typing.get_origin(typ) or typ
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return value
    raise ValueError(f"{name}: expected {hint}, got {value!r}")
