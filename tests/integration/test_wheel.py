"""The package as a user installs it: `python -m build` (an sdist, then the wheel from it), the
wheel installed with plain pip into a fresh virtual environment that has only pip, then
`asyncrl train a3c --env CartPole-v1 --config cartpole-a3c` run outside the source tree.

It installs torch & co. into the new venv (with constraints.txt, so the tested versions, and
pip's cache): `make wheel-check` runs it, after `make test` in CI (.ci/run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from package_tree import ROOT, copy_source

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
def venv(tmp_path_factory):
    """A fresh venv with only pip, the wheel installed in it: (its bin folder, the wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "source").mkdir()
    source = copy_source(str(tmp / "source"))
    run(sys.executable, "-m", "build", "--outdir", tmp / "dist", source, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("asyncrl-*.whl")
    (sdist,) = (tmp / "dist").glob("asyncrl-*.tar.gz")
    run(sys.executable, "-m", "venv", tmp / "venv", cwd=tmp)
    bin_ = tmp / "venv" / "bin"
    present = [d["name"] for d in json.loads(run(bin_ / "python", "-m", "pip", "list", "--format", "json",
                                                 cwd=tmp).stdout)]
    if set(present) - {"pip"}:      # Python < 3.12's venv also seeds setuptools: a bare venv has pip only
        run(bin_ / "python", "-m", "pip", "uninstall", "-y", *sorted(set(present) - {"pip"}), cwd=tmp)
    run(bin_ / "python", "-m", "pip", "install", "-q", "-c", os.path.join(ROOT, "constraints.txt"), wheel, cwd=tmp)
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


def test_the_sdist_carries_the_license_and_the_configs(venv):
    import tarfile

    _, _, sdist = venv
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "pyproject.toml", "src/asyncrl/py.typed", "src/asyncrl/configs/cartpole-a3c.yaml"} <= names


@pytest.mark.parametrize("extra,brings", [("video", {"imageio", "imageio-ffmpeg", "pygame"}),
                                          ("atari", {"ale-py", "opencv-python-headless"}),
                                          ("ray", {"ray"}), ("onnx", {"onnx", "onnxruntime"})])
def test_the_install_hints_work_on_the_installed_wheel(venv, tmp_path, extra, brings):
    """`pip install 'asyncrl[video]'`, as the error messages say: pip keeps the installed
    asyncrl (not one from an index) and adds the extra's packages (a dry run)."""
    bin_, _, _ = venv
    run(bin_ / "python", "-m", "pip", "install", "-q", "--dry-run", "--report", tmp_path / "r.json",
        "-c", os.path.join(ROOT, "constraints.txt"), f"asyncrl[{extra}]", cwd=tmp_path)
    report = json.loads((tmp_path / "r.json").read_text())
    names = {i["metadata"]["name"].lower() for i in report["install"]}
    assert brings <= names and "asyncrl" not in names, names
