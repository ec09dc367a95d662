"""Experiment configuration: one YAML file per experiment -> typed dataclasses.

Each research track defines its configuration as nested dataclasses (one per component) and keeps
one YAML file per experiment under ``configs/<track>/<exp>.yaml`` mirroring them. This module
loads such a file into the dataclasses, applies ``--set a.b=value`` overrides, and rejects
anything it does not understand:

* an unknown key is a :class:`ConfigError` that lists the valid keys of that section;
* a value of the wrong type is a :class:`ConfigError` naming the key, the expected type and the value;
* an unknown experiment id is a :class:`ConfigError` that lists the available experiments.

* a value out of its range is a :class:`ConfigError` naming the key: a dataclass checks its own
  ranges in ``__post_init__`` with :func:`check_range` (the error gets the section prefix here).

Numbers in scientific notation (``lr: 1e-4``, ``--set train.lr=1e-4``) are floats; YAML 1.1 alone
would read them as strings.

A YAML file may start with ``extends: <other exp id>``: the other file is loaded first and this
file's sections are merged over it key by key (used for CPU-sized presets of an experiment).

A ``description`` may name configuration values in braces, ``"{train.epochs} epochs"``; the loader
checks that they name keys, and :func:`describe` fills them in from the configuration at hand
(after ``--set``, after a resume that extended the run), so a description shown in a log or a
report never contradicts the configuration it describes.

Example::

    cfg = load_experiment(ExperimentConfig, "configs/graphrepair", "3d", ["train.epochs=2"])
    save_resolved(cfg, run_dir, argv=sys.argv)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "apply_overrides",
    "available_experiments",
    "check_range",
    "describe",
    "from_dict",
    "git_commit",
    "load_experiment",
    "parse_override",
    "read_config",
    "save_resolved",
    "to_dict",
    "write_config",
]


class ConfigError(ValueError):
    """A configuration file or override that does not match the typed configuration."""


# YAML 1.1 (PyYAML) reads 1e-4 and 3E5 as strings: accept every spelling float() would
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def check_range(name: str, value: float, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` lies in the interval given (``None`` = unbounded).

    Example: ``check_range("lr", self.lr, low=0, low_open=True)`` requires ``lr > 0``; the message
    shows the interval, e.g. ``lr must be in (0, inf), got -1.0``. NaN is always out of range.
    """
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above or value != value:
        interval = (f"{'(' if low_open or low is None else '['}{'-inf' if low is None else f'{low:g}'}, "
                    f"{'inf' if high is None else f'{high:g}'}{')' if high_open or high is None else ']'}")
        raise ConfigError(f"{name} must be in {interval}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where it is lossless.

    Ints are accepted for floats; lists for tuples; ``None`` only for Optional fields.

    Raises:
        ConfigError: when the value does not fit the annotation.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a section (mapping) for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected bool (true/false), got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected str, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported annotation {_type_name(tp)}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build the dataclass ``cls`` from a (possibly partial) mapping; missing keys keep defaults.

    Args:
        cls: a dataclass type whose fields are annotated with int/float/str/bool, Optional,
            Literal, list/tuple, dict or nested dataclasses.
        data: the mapping read from YAML.
        where: dotted prefix used in error messages.

    Raises:
        ConfigError: for an unknown key (the message lists the valid keys) or a wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        section = where or "top level"
        raise ConfigError(
            f"unknown key(s) {unknown} in {section}; valid keys: {sorted(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a range check in __post_init__: name the section
        raise ConfigError(f"{where}.{exc}" if where else str(exc)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return the configuration as plain nested dicts/lists (JSON- and YAML-serialisable)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--set`` override ``a.b.c=value``; the value is read as YAML (``2``, ``0.5``, ``true``, ``[1, 2]``).

    Raises:
        ConfigError: when there is no ``=`` or the key is empty.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    return path, yaml.safe_load(raw) if raw.strip() else ""


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def available_experiments(config_dir: str | os.PathLike) -> list[str]:
    """Experiment ids (YAML file stems) available in ``config_dir``, sorted."""
    return sorted(p.stem for p in Path(config_dir).glob("*.yaml"))


def _read_yaml(config_dir: Path, exp: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    path = config_dir / f"{exp}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown experiment id {exp!r}; available in {config_dir}: "
            f"{available_experiments(config_dir)}"
        )
    if exp in chain:
        raise ConfigError(f"circular 'extends' chain: {' -> '.join(chain + (exp,))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    parent = data.pop("extends", None)
    if parent is not None:
        data = _merge(_read_yaml(config_dir, str(parent), chain + (exp,)), data)
    return data


def load_experiment(
    cls: type[T],
    config_dir: str | os.PathLike,
    exp: str,
    overrides: Sequence[str] = (),
) -> T:
    """Load ``config_dir/<exp>.yaml`` into ``cls`` and apply ``--set`` overrides.

    Args:
        cls: the track's top-level experiment dataclass.
        config_dir: directory holding one YAML file per experiment.
        exp: experiment id (file stem), e.g. ``"3d"``.
        overrides: strings ``"section.key=value"`` applied in order after the file.

    Returns:
        The typed configuration. If ``cls`` has a field ``exp`` it is set to ``exp``.

    Raises:
        ConfigError: unknown experiment id (lists the available ones), unknown key (lists the
            valid keys), wrong value type, malformed override.
    """
    config_dir = Path(config_dir)
    data = _read_yaml(config_dir, exp)
    if "exp" in {f.name for f in dataclasses.fields(cls)}:
        data["exp"] = exp
    _set_all(data, overrides)
    cfg = from_dict(cls, data)
    describe(cfg)  # a placeholder naming no key is an error now, not when a report is written
    return cfg


def _set_all(data: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``--set`` overrides to a nested dict, in order."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value


def apply_overrides(cfg: T, overrides: Sequence[str], sections: Sequence[str] | None = None) -> T:
    """A copy of the loaded configuration ``cfg`` with ``--set`` overrides applied and checked.

    Args:
        cfg: a configuration dataclass (e.g. one read back from a checkpoint).
        overrides: strings ``"section.key=value"``.
        sections: the top-level sections overrides may touch (``None``: any).

    Raises:
        ConfigError: a malformed override, one outside ``sections``, an unknown key or a wrong
            value type.
    """
    for text in overrides:
        path, _ = parse_override(text)
        if sections is not None and path[0] not in sections:
            raise ConfigError(f"override {text!r}: only {list(sections)} may be changed here")
    data = to_dict(cfg)
    _set_all(data, overrides)
    return from_dict(type(cfg), data)


def describe(cfg: Any) -> str:
    """``cfg.description`` with every ``{section.key}`` replaced by that value of ``cfg``.

    Raises:
        ConfigError: a placeholder that names no key.
    """
    return _fill(getattr(cfg, "description", "") or "", to_dict(cfg))


def _fill(text: str, resolved: Mapping[str, Any]) -> str:
    """Replace ``{section.key}`` in ``text`` by the resolved value.

    Raises:
        ConfigError: a placeholder that names no key.
    """
    def value(match: re.Match) -> str:
        node: Any = resolved
        for part in match.group(1).split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(f"description names {{{match.group(1)}}}, which is not a key")
            node = node[part]
        return ", ".join(map(str, node)) if isinstance(node, list) else str(node)

    return re.sub(r"\{([A-Za-z_][\w.]*)\}", value, text)


def git_commit(repo_dir: str | os.PathLike | None = None) -> str:
    """Current git commit of ``repo_dir`` (with ``-dirty`` when the tree has changes), or ``"unknown"``."""
    cwd = str(repo_dir or Path(__file__).resolve().parent.parent)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the configuration ``cfg`` as YAML (keys in declaration order) atomically to ``path``."""
    from harness.io import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def read_config(cls: type[T], path: str | os.PathLike) -> T:
    """Read a configuration written by :func:`write_config` back into ``cls``.

    Raises:
        ConfigError: the file is unreadable, not YAML, or not a valid ``cls`` (the message names it).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path} ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return from_dict(cls, data)


def save_resolved(cfg: Any, run_dir: str | os.PathLike, argv: Sequence[str]) -> Path:
    """Write ``config.yaml`` (the resolved config) and ``run.json`` (command line, git commit) to ``run_dir``.

    Returns:
        Path of the written ``config.yaml``.
    """
    from harness.io import atomic_write_text

    run_dir = Path(run_dir)
    path = write_config(cfg, run_dir / "config.yaml")
    meta = {"argv": list(argv), "git_commit": git_commit()}
    atomic_write_text(run_dir / "run.json", json.dumps(meta, indent=2) + "\n")
    return path
