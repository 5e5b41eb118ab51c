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
