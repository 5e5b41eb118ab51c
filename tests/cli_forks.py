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
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback

import asyncrl.cli as cli  # everything `python -m asyncrl` imports before main()

TIMEOUT_S = 120.0


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


def _child(args: list[str], cwd: str, out_path: str, err_path: str) -> None:
    code = 1
    try:
        os.setpgid(0, 0)              # a worker a case should not have started dies with it
        os.chdir(cwd)
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
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def run_case(args: list[str], cwd: str, tmp: str) -> dict:
    out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(args, cwd, out_path, err_path)
    deadline = time.monotonic() + TIMEOUT_S
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
        time.sleep(0.002)
    try:                              # whatever the case left running in its group
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with open(out_path) as fo, open(err_path) as fe:
        return {"returncode": returncode, "stdout": fo.read(), "stderr": fe.read()}


def main() -> None:
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
