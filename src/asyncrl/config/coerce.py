"""Values from YAML files, flags and keyword arguments, converted to the fields' types."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import Field
from typing import Any

from ..errors import ConfigError


def coerce_value(f: Field, value: Any, source: str = "config") -> Any:
    """Convert a value (from YAML or a keyword argument) to dataclass field f's type, or fail
    clearly."""
    name = f.name
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    kind = type(default)
    original = value
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if kind is int:
            if isinstance(value, str):
                value = float(value) if any(c in value for c in ".eE") and "x" not in value else int(value)
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is list:
            items = value if isinstance(value, (list, tuple)) else [value]
            item_type = f.metadata.get("item_type", str)
            return [coerce_item(v, item_type) for v in items]
        if kind is dict:
            return keyword_arguments(value)
        if kind is str:
            if isinstance(value, bool) and "yes" in f.metadata.get("choices", ()):
                return "yes" if value else "no"      # YAML 1.1 reads yes/no/on/off as booleans
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        return value
    expected = f"a list of {f.metadata.get('item_type', str).__name__}" if kind is list else kind.__name__
    if kind is dict:
        expected = "KEY=VALUE pairs (a mapping of names to values in a config file)"
    raise ConfigError(f"{source}: {name.replace('_', '-')} must be {expected}, got {original!r}")


def keyword_arguments(value: Any) -> dict:
    """A mapping of keyword names to values, from a mapping (YAML, Python) or from KEY=VALUE
    strings (the command line; VALUE an int or float if it reads as one, else read as YAML:
    false, null, [1, 2], text). Nothing (None, "", []) is {}. ValueError for anything else, a
    KEY that is no Python name, or a value config.yaml could not hold."""
    import yaml

    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for pair in [value] if isinstance(value, str) else value:
            if not isinstance(pair, str) or "=" not in pair:
                raise ValueError(pair)
            key, text = pair.split("=", 1)
            items.append((key.strip(), _scalar(text.strip())))
    out = dict(items)
    if not all(isinstance(k, str) and k.isidentifier() for k in out):
        raise ValueError(value)
    try:
        if yaml.safe_load(yaml.safe_dump(out)) != out:      # a tuple, a NumPy number, an object
            raise ValueError(value)
    except yaml.YAMLError:
        raise ValueError(value) from None
    return out


def _scalar(text: str) -> Any:
    import yaml

    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        raise ValueError(text) from None


def coerce_item(value: Any, item_type: type) -> Any:
    """One list item: ints must be whole numbers (no silent truncation of 1.5 or True)."""
    if item_type is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    return item_type(value)


def load_config_file(path: str) -> dict:
    """Read a YAML config file into a dict of field values (keys may use - or _).

    `path` is a file, or the name of a config shipped in the package (`cartpole-a3c`: no
    slash, no `.yaml`; asyncrl/configs/<name>.yaml). A file that exists wins over a name."""
    import yaml

    if not os.path.isfile(path):
        shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
        if path and "/" not in path and os.sep not in path and not path.endswith((".yaml", ".yml")):
            names = sorted(n[:-5] for n in os.listdir(shipped) if n.endswith(".yaml"))
            if path not in names:
                raise ConfigError(f"config {path!r} is neither a file nor a shipped config; the shipped "
                                  f"configs: {', '.join(names)}")
            path = os.path.join(shipped, path + ".yaml")
        else:
            raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"config file {path!r} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8 YAML") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"config file {path!r} is not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
