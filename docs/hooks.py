"""MkDocs hooks (mkdocs.yml `hooks:`): the parts of the site that are generated at build time,
so that they cannot drift from the code.

- The configuration reference (docs/reference/configuration.md): one row per field of
  `asyncrl.config.Config`, read from the dataclass and its metadata (the same source the
  CLI's flags are generated from), and the values `--preset atari` fills in.
- The CLI reference (docs/reference/cli.md): `asyncrl --help` and each subcommand's help,
  from `asyncrl.cli.build_parser()`.
- The README as a page (readme.md), and links from any page to files of the repository
  outside docs/ (`../benchmarks/results/x.json`, `../README.md`): on GitHub they work as
  written; on the site they are rewritten to the README page or to a copy of the file
  under repo/. A link whose target exists nowhere is left alone, so `mkdocs build
  --strict` fails on it.
- The benchmark pages' tables (docs/benchmarks/*.md): a block `<!-- results-table ... -->`
  holds a small YAML spec (which file of benchmarks/results/, which entries are the rows,
  and a format string per column) and is replaced by a table of the numbers in that file,
  so the figures on a page are the file's. See `results_table`.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
import posixpath
import re
import string
import sys
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")

CONFIG_MARKER = "<!-- generated: configuration-table -->"
PRESET_MARKER = "<!-- generated: preset-table -->"
CLI_MARKER = "<!-- generated: cli-help -->"
ERRORS_MARKER = "<!-- generated: error-classes -->"

RESULTS_TABLE = re.compile(r"<!-- results-table\n(.*?)\n-->", re.S)
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")

README_PAGE = "readme.md"        # the README, as a page of the site
REPO_COPIES = "repo"             # files of the repository outside docs/, copied for the site

# [text](target) and ![alt](target "title"): the target is group 1
_LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_FENCE = re.compile(r"^(\s*)(```|~~~)")


# ---------------------------------------------------------------------- links into the repository
def _outside_fences(markdown: str):
    """Yield (is_code, chunk) for the markdown, fenced code blocks apart."""
    chunk, code, fence = [], False, ""
    for line in markdown.splitlines(keepends=True):
        m = _FENCE.match(line)
        if m and (not code or line.strip().startswith(fence)):
            if not code:
                yield False, "".join(chunk)
                chunk, code, fence = [line], True, m.group(2)
            else:
                chunk.append(line)
                yield True, "".join(chunk)
                chunk, code = [], False
            continue
        chunk.append(line)
    yield code, "".join(chunk)


def _repo_target(target: str, repo_path: str) -> tuple[str, str] | None:
    """(path in the repository, '#anchor' or '') of a relative link written in the file at
    repo_path, or None for a link that is not relative (a URL, an anchor, an absolute path)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return None
    path, sep, anchor = target.partition("#")
    if not path:
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path)), sep + anchor


def _site_target(repo_target: str) -> str | None:
    """Where a repository path lives on the site (a path relative to docs/), or None."""
    if repo_target.startswith("docs/"):
        return repo_target[len("docs/"):]
    if repo_target == "README.md":
        return README_PAGE
    if os.path.isfile(os.path.join(ROOT, repo_target)) and not repo_target.startswith("../"):
        return f"{REPO_COPIES}/{repo_target}"
    return None


def _outside_files(markdown: str, repo_path: str) -> set[str]:
    """Repository files outside docs/ (the README aside) that the markdown links to."""
    found = set()
    for code, chunk in _outside_fences(markdown):
        if code:
            continue
        for m in _LINK.finditer(chunk):
            t = _repo_target(m.group(2), repo_path)
            if t and not t[0].startswith("docs/") and t[0] != "README.md" and _site_target(t[0]):
                found.add(t[0])
    return found


def _rewrite_links(markdown: str, repo_path: str, site_path: str) -> str:
    """The links of a page written at repo_path, made to work from site_path."""
    def fix(m: re.Match) -> str:
        t = _repo_target(m.group(2), repo_path)
        if t is None:
            return m.group(0)
        site = _site_target(t[0])
        if site is None:                     # nowhere: left for --strict to report
            return m.group(0)
        rel = posixpath.relpath(site, posixpath.dirname(site_path) or ".")
        return f"{m.group(1)}{rel}{t[1]}{m.group(3)}"

    return "".join(chunk if code else _LINK.sub(fix, chunk) for code, chunk in _outside_fences(markdown))


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def on_config(config: Any) -> Any:
    """The checkout's asyncrl, installed or not, is the one documented (MkDocs restores
    sys.path after loading this file, so it is put first here)."""
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    return config


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, README_PAGE, content=_readme()))
    wanted: set[str] = _outside_files(_readme(), "README.md")
    for f in files.documentation_pages():
        if f.abs_src_path and f.src_uri != README_PAGE:
            with open(f.abs_src_path, encoding="utf-8") as fh:
                wanted |= _outside_files(fh.read(), "docs/" + f.src_uri)
    for path in sorted(wanted):
        files.append(File.generated(config, f"{REPO_COPIES}/{path}", abs_src_path=os.path.join(ROOT, path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    src = page.file.src_uri
    repo_path = "README.md" if src == README_PAGE else "docs/" + src
    markdown = _rewrite_links(markdown, repo_path, src)
    markdown = RESULTS_TABLE.sub(lambda m: results_table(m.group(1), src), markdown)
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_table())
    if PRESET_MARKER in markdown:
        markdown = markdown.replace(PRESET_MARKER, preset_table())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if ERRORS_MARKER in markdown:
        markdown = markdown.replace(ERRORS_MARKER, error_classes())
    return markdown


# ---------------------------------------------------------------------- the configuration reference
def _inline(text: str) -> str:
    """Help text as HTML: escaped, with `code` spans kept."""
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def _type_name(f: dataclasses.Field) -> str:
    """The field's type as the API's signatures show it (`float`, `list[int]`); an option's
    `Literal[...]` as `str`, its choices being listed beside it."""
    import typing

    from asyncrl.config import Config
    from asyncrl.config.describe import type_name

    hint = typing.get_type_hints(Config)[f.name]
    return "str" if typing.get_origin(hint) is typing.Literal else type_name(hint)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    else:
        value = f.default_factory()
        if not isinstance(value, (list, dict)):        # computed for the machine it runs on
            return "<em>at run time (see help)</em>"
    if isinstance(value, list):
        return "<code>" + html.escape(" ".join(str(v) for v in value)) + "</code>"
    if isinstance(value, str) and not value:
        return "<em>empty</em>"
    return f"<code>{html.escape(str(value))}</code>"


def _train_options() -> dict[str, str]:
    """Each option of `asyncrl train`, by its dest, as the parser spells it: `--t-max`,
    `--lr-anneal / --no-lr-anneal`, or a positional's metavar (`ALGO`)."""
    from asyncrl.cli import build_parser

    out = {}
    for action in _subparsers(build_parser())["train"]._actions:
        if action.option_strings:
            out[action.dest] = " / ".join(f"<code>{html.escape(o)}</code>" for o in action.option_strings
                                          if o.startswith("--"))
        else:
            out[action.dest] = f"<code>{html.escape(action.metavar or action.dest)}</code> (positional)"
    return out


def config_table() -> str:
    from asyncrl.config import Config
    from asyncrl.sources import SOURCES, default_source

    options = _train_options()
    rows = []
    for f in dataclasses.fields(Config):
        name = f.name.replace("_", "-")
        if f.metadata.get("cli") is False:          # asyncrl train refuses them in a --config file
            key = f"<code>{f.name}</code><br><em>command line only</em>"
        else:
            key = f"<code>{f.name}</code>"
        flag = options.get(f.name, "<em>none</em>")
        choices = f.metadata.get("choices")
        help_ = _inline(f.metadata.get("help", ""))
        if choices:
            help_ += "<br>One of: " + ", ".join(f"<code>{html.escape(str(c))}</code>" for c in choices) + "."
        rows.append(f'<tr id="{name}"><td>{key}<br>{flag}</td><td><code>{_type_name(f)}</code></td>'
                    f"<td>{_default(f)}<br><em>{default_source(f.name)}</em></td><td>{help_}</td></tr>")
    head = "<tr><th>key / flag</th><th>type</th><th>default (source)</th><th>what it does</th></tr>"
    legend = "; ".join(f"<em>{tag}</em>: {html.escape(text)}" for tag, text in SOURCES.items())
    return (f"{len(rows)} options, in the order `asyncrl.Config` defines them. Each row's key is the "
            f"YAML key and the keyword argument; under it, the flag of `asyncrl train` and `asyncrl bench`. "
            f"Under each default, where it comes from ({legend}); the family presets' values, and theirs, "
            f"are in [Presets](../configuration.md#presets-where-the-defaults-come-from) and `asyncrl train --help`.\n\n"
            '<div class="md-typeset__scrollwrap"><div class="md-typeset__table">\n'
            '<table class="config-reference">\n<thead>' + head + "</thead>\n<tbody>\n"
            + "\n".join(rows) + "\n</tbody>\n</table>\n</div></div>\n")


def preset_table() -> str:
    """The values --preset atari fills in, one column per group of algorithms that get the same;
    a value that depends on the cores (workers) is shown for a machine with plenty of them."""
    from asyncrl import presets
    from asyncrl.config import ALGOS, Config

    defaults = {}
    for f in dataclasses.fields(Config):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        defaults[f.name] = value if f.default is not dataclasses.MISSING or isinstance(value, (list, dict)) else None
    real = presets.available_cores
    try:
        presets.available_cores = lambda: 1 << 20
        many = {algo: presets.preset_values("atari", algo) for algo in ALGOS}
        presets.available_cores = lambda: 1
        few = {algo: presets.preset_values("atari", algo) for algo in ALGOS}
    finally:
        presets.available_cores = real
    groups: list[list[str]] = []             # algorithms the preset gives the same values
    for algo in ALGOS:
        for g in groups:
            if many[g[0]] == many[algo] and few[g[0]] == few[algo]:
                g.append(algo)
                break
        else:
            groups.append([algo])
    keys = [k for k in defaults if any(k in many[a] for a in ALGOS)]
    differ = [k for k in keys if any(k in many[a] and many[a][k] != defaults[k] for a in ALGOS)]
    same = [k for k in keys if k not in differ]

    def cell(algo: str, key: str) -> str:
        if key not in many[algo]:
            return "<em>not set</em>"
        value, small = many[algo][key], few[algo].get(key)
        text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        out = f"<code>{html.escape(text)}</code>"
        if small != value:
            out += " (fewer where there are fewer cores)"
        return out + (" (the default)" if value == defaults.get(key) else "")

    head = "".join(f"<th>{', '.join(g)}</th>" for g in groups)
    rows = "\n".join(f"<tr><td><code>{k}</code></td>" + "".join(f"<td>{cell(g[0], k)}</td>" for g in groups)
                     + "</tr>" for k in differ)
    return (f"<table>\n<thead><tr><th>key</th>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n\n"
            "The preset also sets these to the values they have by default: "
            + ", ".join(f"`{k}`" for k in same) + ".\n")


# ---------------------------------------------------------------------- the CLI reference
def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def cli_reference() -> str:
    from asyncrl.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"             # argparse wraps to the terminal: fix the width
    try:
        parser = build_parser()
        parts = ["## asyncrl\n", "```text\n" + parser.format_help().rstrip() + "\n```\n"]
        for name, sub in _subparsers(parser).items():
            parts += [f"## asyncrl {name}\n", "```text\n" + sub.format_help().rstrip() + "\n```\n"]
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


# ---------------------------------------------------------------------- the errors, for mkdocstrings
def error_classes() -> str:
    """A mkdocstrings directive for every AsyncRLError class that asyncrl.errors defines, the
    base first, in the order they are written."""
    import inspect

    from asyncrl import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.AsyncRLError) and c.__module__ == errors.__name__]
    classes.sort(key=lambda c: inspect.getsourcelines(c)[1])
    return "\n".join(f"::: asyncrl.errors.{c.__name__}\n" for c in classes)


# ---------------------------------------------------------------------- the benchmark pages' tables
class _Missing(Exception):
    """A value a cell names is null in the results file (the cell's `else` format is used)."""


class _CellFormatter(string.Formatter):
    """str.format with what result tables need: a null value (or any field of a null row)
    raises _Missing; a bool's format spec is `text if true|text if false`; the spec `M`
    writes a count in millions (7.3M)."""

    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str) and key not in kwargs and "row" in kwargs and kwargs["row"] is None:
            raise _Missing
        return super().get_value(key, args, kwargs)

    def format_field(self, value: Any, spec: str) -> str:
        if value is None:
            raise _Missing
        if isinstance(value, bool) and spec:
            yes, _, no = spec.partition("|")
            return yes if value else no
        if spec == "M":
            return f"{value / 1e6:.1f}M"
        return format(value, spec)


_CELL = _CellFormatter()


def _load_results(name: str) -> Any:
    with open(os.path.join(RESULTS_DIR, name), encoding="utf-8") as fh:
        return json.load(fh)


def _lookup(data: Any, path: str) -> Any:
    """The entry at a dotted path (`results.one-step-q`, `runs.0`); '' or '.' is data itself."""
    for part in filter(None, path.split(".")):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _cell(spec: Any, context: dict) -> str:
    """One cell: a format string over the context, or {format, else}, or {each, format, else,
    sep} (the format applied to every item of the list at `each`, joined by `sep`, "; ")."""
    if isinstance(spec, str):
        spec = {"format": spec}
    if "each" in spec:
        items = _lookup(context["row"], spec["each"])
        return spec.get("sep", "; ").join(_cell({k: v for k, v in spec.items() if k not in ("each", "sep")},
                                                {**(item if isinstance(item, dict) else {}), "row": item,
                                                 "doc": context["doc"]}) for item in items)
    try:
        return _CELL.vformat(spec["format"], (), context)
    except _Missing:
        if "else" not in spec:
            raise
        return _CELL.vformat(spec["else"], (), context)


def _rows(spec: Any, doc: Any) -> list[tuple[dict, Any, Any]]:
    """(extra fields, entry, its file) for each row: `rows` is a path whose every item is a row
    (its key the label), or a mapping of path -> label (or -> {label: ..., other fields}); a
    path `other.json:path` reads another file of benchmarks/results/ (the row's `doc`)."""
    if isinstance(spec, str):
        return [({"label": key}, entry, doc) for key, entry in _lookup(doc, spec).items()]
    rows = []
    for path, extra in spec.items():
        source = doc
        if ":" in path:
            name, path = path.split(":", 1)
            source = _load_results(name)
        rows.append((extra if isinstance(extra, dict) else {"label": extra}, _lookup(source, path), source))
    return rows


def results_table(text: str, page: str = "") -> str:
    """A markdown table from a results file, as a `<!-- results-table ... -->` block asks:

        file: cartpole_value_based.json          # in benchmarks/results/
        caption: "Commit `{commit}`, {cpus} cores."   # optional, formatted over the whole file
        rows: results                            # or a mapping {path: label}
        columns:
          method: "{label}"
          median wall time (s): "{median_seconds}"
          per seed: {each: runs, format: "{eval_mean_return} ({seconds})"}

    The caption and the column headers are formatted over the whole file. A cell's format
    string reads the row's fields, `label` (and the other fields the row's
    entry in `rows` gives), `row` (the entry itself) and `doc` (the whole file); a cell whose
    value is null in the file needs an `else` format. Anything the file lacks fails the build."""
    import yaml

    try:
        spec = yaml.safe_load(text)
        doc = _load_results(spec["file"])
        whole = {**doc, "doc": doc}                # what the caption and the headers read
        lines = [_CELL.vformat(spec["caption"], (), whole), ""] if spec.get("caption") else []
        columns = spec["columns"]
        lines.append("| " + " | ".join(_CELL.vformat(h, (), whole) for h in columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for extra, entry, source in _rows(spec["rows"], doc):
            context = {**(entry if isinstance(entry, dict) else {}), **extra, "row": entry, "doc": source}
            cells = [_cell(c, context).replace("|", "\\|") for c in columns.values()]
            lines.append("| " + " | ".join(cells) + " |")
    except (OSError, KeyError, IndexError, TypeError, ValueError, AttributeError, _Missing, yaml.YAMLError) as exc:
        raise ValueError(f"{page}: a results table that cannot be made: {type(exc).__name__}: {exc}\n"
                         f"{text}") from exc
    return "\n".join(lines) + "\n"
