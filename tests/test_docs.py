"""Docs that cannot rot.

1. The site builds with `mkdocs build --strict` (a broken link or anchor, a page missing from
   the nav, an API reference that no longer resolves: each fails), and its generated
   references list every `asyncrl.Config` field and every subcommand.
2. The ```python blocks of docs/getting-started.md and docs/tutorials/*.md run, each page's
   blocks in order in one fresh interpreter (as one script a reader would paste), in a
   temporary folder. Step counts are cut so a page takes seconds: `.learn(N)` becomes
   `.learn(2_000)` and `steps=N` becomes `steps=2_000`. A block whose fence line is
   ```python title="name.py"``` is a file the page asks the reader to save: it is written, not
   run. A block right after a line `<!-- skip-test ... -->` (a GPU, a Ray cluster, minutes of
   Atari) is not run.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE_PAGES = [DOCS / "getting-started.md", *sorted((DOCS / "tutorials").glob("*.md"))]
SHRUNK_STEPS = "2_000"
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


@dataclass
class Block:
    page: str
    line: int            # the first line of the code, 1-based, in the page
    code: str
    file: str | None     # title="name.py": a file to write instead of running
    skip: bool


_FENCE_OPEN = re.compile(r"^```python\b(.*)$")
_TITLE = re.compile(r'title="([^"]+)"')


def python_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i, previous = [], 0, ""
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        title = _TITLE.search(m.group(1))
        blocks.append(Block(str(path.relative_to(ROOT)), start + 1, "\n".join(body) + "\n",
                            title.group(1) if title else None, previous.startswith("<!-- skip-test")))
        previous, i = "", i + 1
    return blocks


def shrink(code: str) -> str:
    """Training budgets cut to seconds (the page's own numbers are for a reader's real run)."""
    code = re.sub(r"\.learn\(\s*[\d_]+\s*\)", f".learn({SHRUNK_STEPS})", code)
    return re.sub(r"\bsteps=[\d_]+", f"steps={SHRUNK_STEPS}", code)


# Runs each block compiled under its page's name with the code at the page's line numbers, so a
# traceback points into the markdown.
_DRIVER = """
import json, sys
ns = {"__name__": "__main__"}
for page, line, code in json.load(open(sys.argv[1])):
    exec(compile("\\n" * (line - 1) + code, page, "exec"), ns)
"""


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_examples_run(page: Path, tmp_path: Path) -> None:
    blocks = python_blocks(page)
    runnable = [b for b in blocks if not b.skip and b.file is None]
    for b in blocks:
        if b.file is not None and not b.skip:
            (tmp_path / b.file).write_text(b.code, encoding="utf-8")
    if not runnable:
        pytest.skip(f"{page.name} has no python block to run")
    script = tmp_path / "_blocks.json"
    script.write_text(json.dumps([[b.page, b.line, shrink(b.code)] for b in runnable]), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
           "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (f"{len(runnable)} blocks of {page.relative_to(ROOT)}: exit {proc.returncode}\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


def test_every_example_page_is_found() -> None:
    """The pages the examples test reads exist and hold python blocks (a renamed page or a
    broken fence would otherwise make the test above pass by running nothing)."""
    assert (DOCS / "getting-started.md").is_file()
    assert len(EXAMPLE_PAGES) >= 7, EXAMPLE_PAGES
    counts = {p.name: sum(not b.skip and b.file is None for b in python_blocks(p)) for p in EXAMPLE_PAGES}
    assert counts["getting-started.md"] >= 2, counts
    assert sum(counts.values()) >= 8, counts


def test_site_builds_strict(tmp_path: Path) -> None:
    missing = [m for m in DOCS_PACKAGES if importlib.util.find_spec(m.split(".")[0]) is None
               or importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed (missing {', '.join(missing)}): "
                    f"pip install -e '.[docs]' (make test installs it)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
                           "--config-file", str(ROOT / "mkdocs.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert "WARNING" not in log, log[-8000:]

    # every page under docs/ is in the site
    pages = sorted(p.relative_to(DOCS).with_suffix(".html") for p in DOCS.rglob("*.md"))
    assert [p for p in pages if not (site / p).is_file()] == []

    # the benchmark pages' tables hold the results files' numbers (docs/hooks.py results_table)
    value_based = json.loads((ROOT / "benchmarks" / "results" / "cartpole_value_based.json").read_text())
    page = (site / "benchmarks" / "value-based.html").read_text(encoding="utf-8")
    for method, r in value_based["results"].items():
        assert f"<td>{method}</td>" in page and f"<td>{r['median_seconds']}</td>" in page, method
    assert [p.name for p in (site / "benchmarks").glob("*.html") if "results-table" in p.read_text()] == []

    # the generated references: every Config field has its row, every subcommand its help
    from asyncrl.cli import build_parser
    from asyncrl.config import Config

    table = (site / "reference" / "configuration.html").read_text(encoding="utf-8")
    absent = [f.name for f in fields(Config) if f'id="{f.name.replace("_", "-")}"' not in table]
    assert absent == [], f"configuration reference lacks {absent}"
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    subcommands = next(a.choices for a in build_parser()._actions if hasattr(a, "choices") and a.choices
                       and isinstance(a.choices, dict))
    assert [c for c in subcommands if f"usage: asyncrl {c}" not in cli] == []
    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    for name in ("A3C", "A2C", "OneStepQ", "OneStepSarsa", "NStepQ", "load", "Config", "ConfigError"):
        assert f'id="asyncrl.{name}"' in api or f'id="asyncrl.errors.{name}"' in api, name
    # the agents' hyperparameters, generated from Config (asyncrl.config.describe): each one
    # with its help, on every agent's entry (the page is built by inspection, not from source)
    import html as html_lib

    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", api))
    text = re.sub(r"\s+", " ", text)
    for name in ("A3C", "NStepQ"):
        part = text.split(f"class {name}", 1)[-1]
        missing = [f.name for f in fields(Config) if f.name not in ("algo", "env", "workers", "run_dir")
                   and f" {f.name} " not in part]
        assert missing == [], f"the API reference's {name} lacks {missing}"
    assert "lr float learning rate (paper: 7e-4, annealed linearly to 0). Default: 0.0007" in text


# ---------------------------------------------------------------------- the benchmark pages' tables
def _hooks():
    """docs/hooks.py as a module (it needs MkDocs installed, as the build does)."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("the docs extra is not installed: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("asyncrl_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def results(tmp_path: Path, monkeypatch):
    hooks = _hooks()
    monkeypatch.setattr(hooks, "RESULTS_DIR", str(tmp_path))
    (tmp_path / "r.json").write_text(json.dumps({
        "commit": "abc1234", "cpus": 2,
        "results": {"q": {"runs": [{"s": 1.5, "n": 1000}, {"s": 2.25, "n": None}], "ok": True, "frames": 7347120},
                    "sarsa": {"runs": [{"s": 3.0, "n": 20}], "ok": False, "frames": None}}}))
    (tmp_path / "other.json").write_text(json.dumps({"commit": "def5678", "x": {"ok": True, "frames": 1e6, "runs": []}}))
    return hooks


def test_results_table_renders_the_file(results) -> None:
    spec = """file: r.json
caption: "Commit `{commit}`, {cpus} cores."
rows: results
columns:
  "method at {commit}": "{label}"
  done: "{ok:yes|no}"
  frames: {format: "{frames:M}", else: none}
  per seed: {each: runs, format: "{s} s ({n:,})", else: "{s} s (not solved)"}"""
    assert results.results_table(spec, "p.md") == (
        "Commit `abc1234`, 2 cores.\n\n"
        "| method at abc1234 | done | frames | per seed |\n"
        "|---|---|---|---|\n"
        "| q | yes | 7.3M | 1.5 s (1,000); 2.25 s (not solved) |\n"
        "| sarsa | no | none | 3.0 s (20) |\n")


def test_results_table_rows_by_path_with_fields_and_other_files(results) -> None:
    spec = """file: r.json
rows:
  results.sarsa: {label: SARSA, paper: "2.8"}
  "other.json:x": the other file
  results.q.runs.0: first run
columns:
  row: "{label}"
  commit: "`{doc[commit]}`"
  extra: {format: "{paper}", else: "-"}"""
    with pytest.raises(ValueError, match="KeyError: 'paper'"):       # a field no row has: the build fails
        results.results_table(spec, "p.md")
    spec = spec.replace('extra: {format: "{paper}", else: "-"}', 'first: "{row}"').replace("  results.q.runs.0: first run\n", "")
    table = results.results_table(spec, "p.md").splitlines()
    assert table[2].startswith("| SARSA | `abc1234` | {")
    assert table[3].startswith("| the other file | `def5678` | {")
    # a label containing a pipe is escaped, not a new column
    assert "\\|" in results.results_table("file: r.json\nrows: {results.q: a|b}\ncolumns: {x: '{label}'}")


@pytest.mark.parametrize("bad, expected", [
    ("file: nothere.json\nrows: results\ncolumns: {m: '{label}'}", "nothere.json"),          # no such file
    ("file: r.json\nrows: results.none\ncolumns: {m: '{label}'}", "KeyError: 'none'"),      # no such entry
    ("file: r.json\nrows: results\ncolumns: {m: '{missing}'}", "KeyError: 'missing'"),      # no such field
    ("file: r.json\nrows: results\ncolumns: {f: '{frames:M}'}", "_Missing"),               # null, no else
    ("file: r.json\nrows: results\ncolumns: {m: '{label:d}'}", "ValueError"),              # a bad format
    ("file: r.json\nrows: [unclosed\ncolumns: x", "YAMLError|ScannerError|ParserError"),     # not YAML
])
def test_results_table_that_cannot_be_made_fails_the_build(results, bad: str, expected: str) -> None:
    with pytest.raises(ValueError, match=f"page.md: a results table that cannot be made: .*({expected})"):
        results.results_table(bad, "page.md")


def test_every_benchmark_page_renders_from_its_results() -> None:
    """Each results-table block of docs/benchmarks/ renders from the real benchmarks/results/
    files (a renamed file or key fails here before the site is built), and a page that says
    "not yet measured" has no figure table."""
    hooks = _hooks()
    pages = sorted((DOCS / "benchmarks").glob("*.md"))
    rendered = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for m in hooks.RESULTS_TABLE.finditer(text):
            table = hooks.results_table(m.group(1), page.name)
            assert table.count("\n|") >= 2, (page.name, table)
            rendered += 1
        if "Not yet measured" in text:
            assert not hooks.RESULTS_TABLE.search(text) and "\n|" not in text, page.name
    assert rendered >= 20, rendered
    names = {p.stem for p in pages}
    assert {"index", "memory-defaults", "eval-overhead", "cartpole-defaults"} <= names, names
