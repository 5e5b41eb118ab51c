"""The package as pip builds it, for tests/unit/test_package.py and tests/integration/test_wheel.py."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "src", "asyncrl", "configs")


def shipped_config_names() -> list[str]:
    """The configs the package ships (src/asyncrl/configs/<name>.yaml)."""
    return sorted(n[:-5] for n in os.listdir(SHIPPED) if n.endswith(".yaml"))


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)


def constraint_pins() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    pins = {}
    with open(os.path.join(ROOT, "constraints.txt")) as fh:
        for line in fh:
            line = line.split("#")[0].strip()
            if line:
                name, version = line.split("==")
                pins[normalise(name)] = version
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def copy_source(dest: str) -> str:
    """What a build needs (pyproject.toml, README.md, LICENSE, src/), copied to dest, so a build
    writes nothing into the working tree; no caches or egg-info."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), dest)
    shutil.copytree(os.path.join(ROOT, "src"), os.path.join(dest, "src"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def build_wheel_fast(source: str, out: str) -> str:
    """`pip wheel --no-deps --no-build-isolation`: the venv's setuptools, nothing installed."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", out, source], check=True, capture_output=True, text=True)
    (wheel,) = [f for f in os.listdir(out) if f.endswith(".whl")]
    return os.path.join(out, wheel)
