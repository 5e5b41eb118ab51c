"""The package as pip sees it: version ranges and the pins of constraints.txt, the wheel's
files (configs, py.typed, LICENSE), the shipped configs by name, the install hints."""
from __future__ import annotations

import importlib.metadata
import os
import re
import zipfile

import pytest
from packaging.requirements import Requirement

from asyncrl.config import load_config_file
from asyncrl.errors import ConfigError
from package_tree import (ROOT, build_wheel_fast, constraint_pins, copy_source, normalise, pyproject,
                          shipped_config_names)


def requirements() -> list[Requirement]:
    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return [Requirement(r) for r in reqs]


def test_every_dependency_is_a_compatible_range_not_a_pin():
    for req in requirements():
        ops = {s.operator for s in req.specifier}
        assert "==" not in ops and "===" not in ops, f"{req}: a pin belongs in constraints.txt"
        assert ">=" in ops and "<" in ops, f"{req}: give a lower bound and the next major as upper bound"


def test_constraints_pin_every_dependency_inside_its_range():
    pins = constraint_pins()
    for req in requirements():
        name = normalise(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"constraints.txt: {req.name}=={pins[name]} is outside {req}"


def test_the_installed_core_dependencies_are_the_pinned_ones():
    """`make setup` installs with -c constraints.txt: the tests run on exactly the pins."""
    pins = constraint_pins()
    for req in pyproject()["project"]["dependencies"]:
        name = Requirement(req).name
        installed = importlib.metadata.version(name).split("+")[0]
        assert installed == pins[normalise(name)], (name, installed)


def test_the_makefile_installs_with_the_constraints_and_the_onnx_extra():
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    installs = [line for line in makefile.splitlines() if "$(PIP) -e" in line]
    assert installs and "-c constraints.txt" in makefile
    assert all("onnx" in line for line in installs if "test" in line), installs


def test_the_wheel_holds_the_configs_py_typed_and_the_license(tmp_path):
    """Built as pip builds it (the venv's setuptools, from a copy of the source)."""
    (tmp_path / "src").mkdir()
    wheel = build_wheel_fast(copy_source(str(tmp_path / "src")), str(tmp_path))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read("asyncrl-0.1.0.dist-info/METADATA").decode()
    assert {f"asyncrl/configs/{n}.yaml" for n in shipped_config_names()} <= names
    assert len(shipped_config_names()) >= 10
    assert "asyncrl/py.typed" in names
    assert "asyncrl-0.1.0.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "Provides-Extra: onnx" in metadata.splitlines()
    requires = [line.split(";")[0] for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert len(requires) == len(requirements()) and not [r for r in requires if "==" in r], requires


def test_license_file_is_mit_for_the_asyncrl_authors():
    text = open(os.path.join(ROOT, "LICENSE")).read()
    assert text.startswith("MIT License") and "the asyncrl authors" in text
    assert pyproject()["project"]["license"] == "MIT"


def test_a_shipped_config_loads_by_name_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in shipped_config_names():
        by_name = load_config_file(name)
        assert by_name and by_name == load_config_file(os.path.join(ROOT, "configs", f"{name}.yaml"))
    assert load_config_file("cartpole-a3c")["t_max"] == 10


def test_a_file_that_exists_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cartpole-a3c").write_text("lr: 0.5\n")
    assert load_config_file("cartpole-a3c") == {"lr": 0.5}


def test_an_unknown_config_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config_file("cartpole")
    assert str(info.value) == ("config 'cartpole' is neither a file nor a shipped config; the shipped configs: "
                               + ", ".join(shipped_config_names()))


@pytest.mark.parametrize("path", ["cartpole-a3c.yaml", "configs/nope.yaml", "sub/cartpole-a3c", ""])
def test_a_missing_path_is_not_taken_for_a_name(tmp_path, monkeypatch, path):
    """A slash or a .yaml ending makes it a path: one that does not exist is refused as such."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"^config file {re.escape(repr(path))} does not exist$"):
        load_config_file(path)


def test_the_shipped_configs_are_listed_for_users():
    for page in ("README.md", os.path.join("docs", "getting-started.md")):
        text = open(os.path.join(ROOT, page)).read()
        missing = [n for n in shipped_config_names() if f"`{n}`" not in text]
        assert not missing, f"{page} does not list the shipped configs {missing}"


def test_the_configs_folder_of_the_checkout_is_the_package_one():
    assert os.path.realpath(os.path.join(ROOT, "configs")) == os.path.join(ROOT, "src", "asyncrl", "configs")


def test_every_install_hint_names_an_extra_that_exists():
    """`pip install 'asyncrl[X]'` works wherever asyncrl is installed (pip keeps the installed
    asyncrl and adds X's packages: tests/integration/test_wheel.py checks it on the wheel);
    `pip install -e .` or `pip install .` works only in a checkout."""
    extras = set(pyproject()["project"]["optional-dependencies"])
    source = ""
    for folder, _, files in os.walk(os.path.join(ROOT, "src", "asyncrl")):
        source += "".join(open(os.path.join(folder, n)).read() for n in files if n.endswith(".py"))
    hints = re.findall(r"""pip install\s*"?\s*"?'asyncrl\[([a-z,]+)\]'""", source)
    assert len(hints) >= 6, hints
    for hint in hints:
        assert set(hint.split(",")) <= extras, f"pip install 'asyncrl[{hint}]': no such extra in pyproject.toml"
    assert not re.search(r"pip install\s*\S*\s*(-e\b|'?\.)", source)
