"""The Config fields as the Python API shows them: keyword parameters with their types and
defaults (an agent class's `inspect.signature`), a Google-style "Args:" section (its
`help()` and the API reference), the closest known name for an unknown one, and an error
message reworded from command-line flags (`--executor sync`) to keyword arguments
(`executor='sync'`). Everything is generated from the one dataclass, so the CLI, the API
and the docs cannot drift."""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import typing
from typing import Any

from ..presets import preset_values

#: Stable-Baselines3's names for the same hyperparameters: suggested, never accepted (an SB3
#: value such as a learning-rate schedule function has no meaning here)
SB3_NAMES = {"learning_rate": "lr", "ent_coef": "entropy_beta", "vf_coef": "value_coef", "n_steps": "t_max",
             "n_envs": "workers", "target_update_interval": "target_update", "verbose": "progress"}
#: the presets an agent's unset values come from, by env family (preset='auto')
FAMILY_PRESET_NAMES = ("classic", "continuous", "paper")


def closest(name: str, known: typing.Iterable[str]) -> str | None:
    """The known name meant by `name`: SB3's name for it, a dashed spelling, or the nearest by
    difflib (None: nothing near)."""
    known = list(known)
    if name in SB3_NAMES:
        return SB3_NAMES[name]
    dashed = name.replace("-", "_")
    if dashed in known:
        return dashed
    match = difflib.get_close_matches(dashed, known, n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_message(source: str, unknown: list[str], known: typing.Iterable[str], what: str = "key") -> str:
    """One line for unknown names: the first, the closest known name, how many more."""
    first = unknown[0]
    hint = closest(first, known)
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    if hint is not None:
        sb3 = " (Stable-Baselines3's name for it)" if first in SB3_NAMES else ""
        return f"{source}: unknown {what} {first!r}{more}; did you mean {hint!r}{sb3}?"
    return f"{source}: unknown {what} {first!r}{more}; known: {', '.join(sorted(known))}"


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def hyperparameter_fields(cls: type, skip: typing.Iterable[str] = ()) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name not in set(skip)]


def parameters(cls: type, skip: typing.Iterable[str] = ()) -> list[inspect.Parameter]:
    """Keyword-only parameters, one per field of dataclass `cls` (except `skip`), annotated
    with the field's type and defaulting to its own default."""
    hints = typing.get_type_hints(cls)
    return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_default(f), annotation=hints[f.name])
            for f in hyperparameter_fields(cls, skip)]


def type_name(annotation: Any) -> str:
    """`float`, `list[int]`, `Literal['a', 'b']` as they read in a docstring."""
    if typing.get_origin(annotation) is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def args_section(cls: type, algo: str, skip: typing.Iterable[str] = ()) -> str:
    """A Google-style "Args:" body (indented 4) for the fields of dataclass `cls`: each with its
    type, help, own default and the family presets' values for `algo` where they differ."""
    hints = typing.get_type_hints(cls)
    presets = {p: preset_values(p, algo) for p in FAMILY_PRESET_NAMES}
    lines = []
    for f in hyperparameter_fields(cls, skip):
        default = _default(f)
        by_family = [f"{p} {presets[p][f.name]!r}" for p in FAMILY_PRESET_NAMES
                     if f.name in presets[p] and presets[p][f.name] != default]
        text = f"{api_words(f.metadata.get('help', ''), cls)}. Default: {default!r}"
        if by_family:
            text += f" (preset auto by env family: {', '.join(by_family)})"
        lines.append(f"    {f.name} ({type_name(hints[f.name])}): {text}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------- flags -> keyword arguments
_FLAG = re.compile(r"--(no-)?([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?: ([A-Za-z0-9_.:+-]+))?")


def api_words(message: str, cls: type, extra_flags: typing.Iterable[str] = ("overwrite",)) -> str:
    """`message` with the command line's words for the fields of dataclass `cls` put as the
    Python API's: `--executor sync` -> `executor='sync'`, `--no-shared-torso` ->
    `shared_torso=False`, `--workers 4` -> `workers=4`, `t-max` -> `t_max`. Flags that name no
    field (`--resume`) are left as they are."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra = set(extra_flags)

    def flag(m: re.Match) -> str:
        negated, name, value = m.group(1), m.group(2).replace("-", "_"), m.group(3)
        f = fields.get(name)
        if f is None:
            return f"{name}=True" + (f" {value}" if value else "") if name in extra else m.group(0)
        default = _default(f)
        if isinstance(default, bool) or f.metadata.get("flag"):
            return f"{name}={not negated}" + (f" {value}" if value else "")
        choices = f.metadata.get("choices")
        if value is not None and choices and value in choices:
            return f"{name}={value!r}"
        if value is not None and isinstance(default, (int, float)) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return f"{name}={value}"
        return name + (f" {value}" if value else "")

    out = _FLAG.sub(flag, message)
    dashed = sorted((n.replace("_", "-") for n in fields if "_" in n), key=len, reverse=True)
    if dashed:
        out = re.sub(r"(?<![\w'-])(" + "|".join(map(re.escape, dashed)) + r")(?![\w-])",
                     lambda m: m.group(1).replace("-", "_"), out)
    return out
