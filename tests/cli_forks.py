"""Run asyncrl's CLI once per case, each case in its own process forked from this one.

`python tests/cli_forks.py CASES.json` reads a list of {"args": [...], "cwd": ..., "watch": ...}
and prints a list of {"returncode", "stdout", "stderr", "watched"} as JSON. This process
imports `asyncrl.cli` once, as `python -m asyncrl` does before it calls `main()`; each
case then runs `main(args)` in a child forked from it, in its own working folder, process
group and stdout/stderr files, and ends with main's return code as its exit status. So a
case sees what a fresh `python -m asyncrl ARGS` sees, without paying for the interpreter's
and torch's start-up each time (tests/integration/test_cli.py's bad inputs: about 2 s each).

"watch" names a folder whose files are hashed after the case, to tell whether it changed
them. A case that runs longer than the timeout has its process group killed and reports
returncode None.

`python tests/cli_forks.py --serve` does the same for one case at a time, read as a JSON line
on stdin ({"args", "cwd", "env", "timeout", "out", "err"}: the case's whole environment and
the files its stdout and stderr go to), answered with a JSON line on stdout
({"returncode"}), until stdin closes: helpers.run_cli starts one per test process and runs
every `asyncrl ARGS` that runs to its end through it.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing.util
import os
import signal
import sys
import tempfile
import threading
import time
import traceback

import asyncrl.cli as cli  # everything `python -m asyncrl` imports before main()

TIMEOUT_S = 120.0
#: --serve's answers (a copy of its stdout), closed in each case's child
_answers_fd = -1


def folder_digest(folder: str) -> str:
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(path.encode())
            with open(path, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def _child(args: list[str], cwd: str, out_path: str, err_path: str, env: dict | None = None) -> None:
    code = 1
    try:
        os.setpgid(0, 0)              # a worker a case should not have started dies with it
        if _answers_fd >= 0:
            os.close(_answers_fd)
        os.chdir(cwd)
        sys.path[0] = os.getcwd()     # as `python -m asyncrl ARGS` started in cwd has them
        sys.argv = [os.path.join(os.path.dirname(cli.__file__), "__main__.py"), *args]
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        f = os.open(os.devnull, os.O_RDONLY)
        os.dup2(f, 0)
        os.close(f)
        for fd, path in ((1, out_path), (2, err_path)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(f, fd)
            os.close(f)
        try:
            code = cli.main(args)
        except SystemExit as exc:     # argparse's errors, as the interpreter would report them
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:         # an uncaught exception: a traceback and exit status 1
            traceback.print_exc()
            code = 1
    finally:
        try:                          # what the interpreter does at exit: wait for its threads and
            threading._shutdown()     # its multiprocessing children (not this process's parent's
            multiprocessing.util._exit_function()   # atexit functions: they are not the case's)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def run_case(args: list[str], cwd: str, tmp: str) -> dict:
    out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
    returncode = fork_case(args, cwd, out_path, err_path, None, TIMEOUT_S)
    with open(out_path) as fo, open(err_path) as fe:
        return {"returncode": returncode, "stdout": fo.read(), "stderr": fe.read()}


def fork_case(args: list[str], cwd: str, out_path: str, err_path: str, env: dict | None,
              timeout: float) -> int | None:
    """One case in a child forked from this process; its exit status (None: it ran past
    `timeout` and its process group was killed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(args, cwd, out_path, err_path, env)
    start = time.monotonic()
    deadline = start + timeout
    returncode = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.002 if time.monotonic() < start + 1 else 0.02)
    try:                              # whatever the case left running in its group
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return returncode


def serve() -> None:
    """One case per JSON line on stdin, its exit status as a JSON line on stdout."""
    global _answers_fd
    _answers_fd = os.dup(1)
    answers = os.fdopen(_answers_fd, "w")
    os.dup2(2, 1)                     # this process prints nothing of its own on the answers' pipe
    for line in sys.stdin:
        case = json.loads(line)
        code = fork_case(case["args"], case["cwd"], case["out"], case["err"], case["env"], case["timeout"])
        answers.write(json.dumps({"returncode": code}) + "\n")
        answers.flush()


def main() -> None:
    if sys.argv[1] == "--serve":
        return serve()
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            res = run_case(case["args"], case["cwd"], tmp)
            res["watched"] = folder_digest(case["watch"]) if case.get("watch") else None
            results.append(res)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
