"""The package as a user installs it: `python -m build` (an sdist, then the wheel from it), the
wheel installed with plain pip into a fresh virtual environment that has only pip, then
`asyncrl train a3c --env CartPole-v1 --config cartpole-a3c` run outside the source tree.

It installs torch & co. into the new venv (with constraints.txt, so the tested versions, and
pip's cache), and once more with the lower bounds of the ranges: `make wheel-check` runs it,
after `make test` in CI (.ci/run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from packaging.requirements import Requirement
from packaging.version import Version

from package_tree import ROOT, constraint_pins, copy_source, normalise, pyproject

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("ASYNCRL_WHEEL_CHECK") != "1",
                                 reason="installs torch into a fresh venv: `make wheel-check` runs it")]

#: what a user's shell has: none of the test suite's PYTHONPATH (tests/conftest.py sets it)
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(*args, cwd, timeout=900) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, args))}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """`python -m build` on a copy of the source: (the wheel, the sdist)."""
    tmp = tmp_path_factory.mktemp("dist")
    (tmp / "source").mkdir()
    run(sys.executable, "-m", "build", "--outdir", tmp / "dist", copy_source(str(tmp / "source")), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("asyncrl-*.whl")
    (sdist,) = (tmp / "dist").glob("asyncrl-*.tar.gz")
    return wheel, sdist


def fresh_venv(folder, wheel, constraints, *pip_args) -> object:
    """A new venv with only pip, then `pip install -c constraints WHEEL`: its bin folder."""
    run(sys.executable, "-m", "venv", folder, cwd=folder.parent)
    bin_ = folder / "bin"
    present = {d["name"] for d in json.loads(run(bin_ / "python", "-m", "pip", "list", "--format", "json",
                                                 cwd=folder).stdout)}
    if present - {"pip"}:      # Python < 3.12's venv also seeds setuptools: a bare venv has pip only
        run(bin_ / "python", "-m", "pip", "uninstall", "-y", *sorted(present - {"pip"}), cwd=folder)
    run(bin_ / "python", "-m", "pip", "install", "-q", *pip_args, "-c", constraints, wheel, cwd=folder)
    return bin_


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
    """The wheel with the tested versions (constraints.txt): (its bin folder, the wheel, the sdist)."""
    wheel, sdist = dist
    bin_ = fresh_venv(tmp_path_factory.mktemp("venv") / "v", wheel, os.path.join(ROOT, "constraints.txt"))
    return bin_, wheel, sdist


def test_the_wheel_trains_cartpole_from_a_shipped_config_outside_the_source_tree(venv, tmp_path):
    bin_, _, _ = venv
    p = run(bin_ / "asyncrl", "train", "a3c", "--env", "CartPole-v1", "--config", "cartpole-a3c", "--steps", "3000",
            "--workers", "2", "--run-dir", "run", "--quiet", cwd=tmp_path)
    assert "asyncrl: run folder run:" in p.stdout, p.stdout
    assert (tmp_path / "run" / "checkpoints" / "final.pt").is_file()
    with open(tmp_path / "run" / "config.yaml") as fh:
        cfg = yaml.safe_load(fh)
    assert (cfg["lr"], cfg["t_max"], cfg["stop_return"], cfg["steps"]) == (0.002, 10, 475.0, 3000)


def test_the_installed_package_is_the_wheel_with_its_data(venv, tmp_path):
    bin_, _, _ = venv
    code = ("import asyncrl, importlib.resources as r, importlib.metadata as m; f = r.files('asyncrl');"
            "print(asyncrl.__file__); print(sorted(p.name for p in (f / 'configs').iterdir()));"
            "print((f / 'py.typed').is_file(), m.metadata('asyncrl')['License-Expression'])")
    out = run(bin_ / "python", "-c", code, cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(bin_.parent)) and "site-packages" in out[0], out
    assert out[1] == str(sorted(os.listdir(os.path.join(ROOT, "src", "asyncrl", "configs"))))
    assert out[2] == "True MIT"
    run(bin_ / "python", "-m", "pip", "check", cwd=tmp_path)


def test_the_sdist_carries_the_license_and_the_configs(dist):
    import tarfile

    _, sdist = dist
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "pyproject.toml", "src/asyncrl/py.typed", "src/asyncrl/configs/cartpole-a3c.yaml"} <= names


@pytest.mark.parametrize("extra,brings", [("video", {"imageio", "imageio-ffmpeg", "pygame"}),
                                          ("atari", {"ale-py", "opencv-python-headless"}),
                                          ("ray", {"ray"}), ("onnx", {"onnx", "onnxruntime"}),
                                          ("wandb", {"wandb"})])
def test_the_install_hints_work_on_the_installed_wheel(venv, tmp_path, extra, brings):
    """`pip install 'asyncrl[video]'`, as the error messages say: pip keeps the installed
    asyncrl (not one from an index) and adds the extra's packages (a dry run)."""
    bin_, _, _ = venv
    run(bin_ / "python", "-m", "pip", "install", "-q", "--dry-run", "--report", tmp_path / "r.json",
        "-c", os.path.join(ROOT, "constraints.txt"), f"asyncrl[{extra}]", cwd=tmp_path)
    report = json.loads((tmp_path / "r.json").read_text())
    names = {i["metadata"]["name"].lower() for i in report["install"]}
    assert brings <= names and "asyncrl" not in names, names


def test_the_lower_bounds_of_the_ranges_work(dist, tmp_path):
    """Every core dependency at the lower bound pyproject.toml gives (torch excepted: below the
    pinned one, PyPI has only CUDA builds of gigabytes), binary wheels only: A3C (hogwild, the
    fused RMSProp), A2C (the vector env) and a plot train and draw from the shipped configs."""
    lows = {}
    for req in (Requirement(r) for r in pyproject()["project"]["dependencies"]):
        (lows[normalise(req.name)],) = [s.version for s in req.specifier if s.operator == ">="]
    lows["torch"] = constraint_pins()["torch"]
    (tmp_path / "low.txt").write_text("".join(f"{name}=={v}\n" for name, v in lows.items()))
    bin_ = fresh_venv(tmp_path / "v", dist[0], tmp_path / "low.txt", "--only-binary", ":all:")
    installed = {normalise(d["name"]): Version(d["version"]) for d in json.loads(
        run(bin_ / "python", "-m", "pip", "list", "--format", "json", cwd=tmp_path).stdout)}
    assert {n: Version(installed[n].base_version) for n in lows} == {n: Version(v) for n, v in lows.items()}
    for algo in ("a3c", "a2c"):
        run(bin_ / "asyncrl", "train", algo, "--env", "CartPole-v1", "--config", f"cartpole-{algo}", "--steps", "3000",
            "--run-dir", algo, "--quiet", cwd=tmp_path)
        assert (tmp_path / algo / "checkpoints" / "final.pt").is_file()
    run(bin_ / "asyncrl", "plot", "a3c", "a2c", "--out", "both.png", cwd=tmp_path)
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"
