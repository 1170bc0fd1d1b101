"""Load YAML config files into strict pydantic models.

Unknown keys are refused. A validation error names the file, the line, the dotted key,
the value found and what is allowed, so the user can fix the file without reading code.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from rope_inspect.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are an error, values are checked."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, frozen=False, allow_inf_nan=False
    )


def _node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the key (or list item) at `loc`, or of its nearest parent."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not pairs:
                return line
            key_node, node = pairs[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def _step(current: Any, part: Any) -> tuple[Any, bool]:
    """Follow one error `loc` part from a type: (next type, was it a union tag)."""
    while typing.get_origin(current) is typing.Annotated:
        current = typing.get_args(current)[0]
    origin = typing.get_origin(current)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(current) if m is not type(None)]
        for member in members:
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and part in typing.get_args(kind.annotation):
                return member, True
        if len(members) == 1:
            return _step(members[0], part)[0], False
        return None, False
    if origin in (list, tuple) and isinstance(part, int):
        return typing.get_args(current)[0], False
    fields = getattr(current, "model_fields", None)
    if fields is not None and part in fields:
        return fields[part].annotation, False
    return None, False


def _walk(model: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[str] | None]:
    """`loc` without union tags, and the keys allowed where its last part sits."""
    current, kept = model, []
    for part in loc[:-1]:
        current, is_tag = _step(current, part)
        if not is_tag:
            kept.append(part)
    if loc:
        kept.append(loc[-1])
    allowed = sorted(getattr(current, "model_fields", {})) or None
    return tuple(kept), allowed


def _describe_error(
    path: Path, root: yaml.Node | None, err: dict[str, Any], model: Any = None
) -> str:
    loc = tuple(
        p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
    )
    loc, allowed = _walk(model, loc)
    value = err.get("input")
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc += (err["ctx"]["discriminator"].strip("'"),)
        value = err["ctx"].get("tag")
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = _node_line(root, loc)
    where = f"{path}:{line}" if line else str(path)
    if err["type"] == "extra_forbidden":
        keys = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return (
            f"{where}: unknown key '{key}' (value {value!r}); "
            f"remove it or check spelling{keys}"
        )
    if err["type"] == "missing":
        return f"{where}: required key '{key}' is missing; add it"
    shown = value if not isinstance(value, dict) else "{...}"
    return f"{where}: key '{key}' = {shown!r}: {err['msg']}"


def _refuse_duplicate_keys(path: Path, node: yaml.Node | None) -> None:
    """YAML lets a repeated key silently win; a config must not."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            name = getattr(key, "value", None)
            line = key.start_mark.line + 1
            if name in seen:
                raise ConfigError(
                    f"{path}:{line}: key '{name}' appears twice (first at line "
                    f"{seen[name]})",
                    "keep one of them; YAML would silently use the last",
                )
            seen[name] = line
            _refuse_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item)


def load_yaml(path: str | Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """Read a YAML mapping and its node tree (for line numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} does not exist",
            "check the path; examples are in configs/",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)",
            "save the file as UTF-8 YAML; is it the right file?",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        root = yaml.compose(text)
        _refuse_duplicate_keys(path, root)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path} is not valid YAML: {exc}", "fix the syntax at the line shown"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of keys, not {type(data).__name__}"
        )
    return data, root


def load_config(path: str | Path, model: type[ModelT]) -> ModelT:
    """Validate the YAML file at `path` against `model`; ConfigError names lines."""
    path = Path(path)
    data, root = load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(path, root, dict(e), model) for e in exc.errors()]
        raise ConfigError(
            f"{path} has {len(lines)} error(s):\n  " + "\n  ".join(lines),
            f"fix the lines shown in {path}; every key is described in the commented "
            "examples in configs/ and in rope_inspect/config.py",
        ) from exc
