"""asyncrl.paths: a run folder, a plot or a video that cannot be written is one line before
any work starts, and the check leaves nothing behind."""
import os

import pytest

from asyncrl.config import Config
from asyncrl.errors import ConfigError
from asyncrl.paths import check_output_file, check_run_dir


def _listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("path,needle", [
    ("/proc/foo", "run-dir '/proc/foo' is on the kernel's /proc file system, where nothing can be written"),
    ("/sys/foo/bar", "run-dir '/sys/foo/bar' is on the kernel's /sys file system"),
    ("/dev/asyncrl-run", "run-dir '/dev/asyncrl-run' is on the kernel's /dev file system"),
])
def test_kernel_file_systems_are_refused(path, needle):
    problem = check_run_dir(path)
    assert problem is not None and needle in problem, problem
    assert not os.path.exists(path)


def test_a_regular_file_is_not_a_run_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert check_run_dir(str(f)) == f"run-dir {str(f)!r} is a file, not a folder"
    assert check_run_dir(str(f / "sub" / "run")) == f"run-dir {str(f / 'sub' / 'run')!r}: {str(f)!r} is a file, not a folder"
    assert f.read_text() == "x"


def test_a_writable_folder_passes_and_nothing_is_left_behind(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("k")
    before = _listing(tmp_path), _listing(tmp_path / "old")
    assert check_run_dir(str(tmp_path / "new" / "deeper")) is None        # not made: only probed
    assert check_run_dir(str(tmp_path / "old")) is None
    assert check_output_file(str(tmp_path / "plots" / "c.png"), "plot file") is None
    assert (_listing(tmp_path), _listing(tmp_path / "old")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "cannot be written" in check_run_dir(str(ro / "run"))
        assert "cannot be written" in check_output_file(str(ro / "v.mp4"), "video file")
    finally:
        ro.chmod(0o700)


def test_output_files(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_output_file(str(tmp_path), "plot file") == f"plot file {str(tmp_path)!r} is a folder, not a file"
    assert "is a file, not a folder" in check_output_file(str(tmp_path / "file" / "c.png"), "plot file")
    assert "/proc file system" in check_output_file("/proc/c.png", "plot file")
    assert "/sys file system" in check_output_file("/sys/kernel/c.gif", "video file")


def test_config_check_refuses_an_unwritable_run_dir(tmp_path):
    """Config.check() (which Agent runs before it builds anything) probes the run folder."""
    with pytest.raises(ConfigError, match="run-dir '/proc/foo' is on the kernel's /proc file system"):
        Config(env="CartPole-v1", run_dir="/proc/foo").check()
    assert Config(env="CartPole-v1", run_dir=str(tmp_path / "r")).check().run_dir == str(tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert Config(env="CartPole-v1").validate() == []          # no run folder: nothing probed
