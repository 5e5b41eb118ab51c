"""A3C on Pong, this checkout against another one, in interleaved pairs.

Each pair runs the A3C row of atari_throughput.py (2 hogwild workers, `--preset atari`,
steady-state frames/s) once with the other checkout's `src` first on PYTHONPATH, then once
with this one's, each in a fresh interpreter. Interleaving spreads the machine's drift
over both. Prints one JSON.

    git worktree add /tmp/old <commit>
    python benchmarks/a3c_pairs.py --other /tmp/old [--pairs 3] [--steps 40000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, emit, header  # noqa: E402

ONE_RUN = """
import json, sys
sys.path.insert(0, {bench!r})
import asyncrl
from atari_throughput import run_asyncrl
r = run_asyncrl("a3c", {steps}, 2)
print(json.dumps({{"asyncrl": asyncrl.__file__, "frames_per_s": r["frames_per_s"]}}))
"""


def one_run(src: str, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    code = ONE_RUN.format(bench=os.path.join(ROOT, "benchmarks"), steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["asyncrl"].startswith(os.path.abspath(src)):
        raise SystemExit(f"ran {result['asyncrl']}, not the code under {src}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", required=True, help="the other checkout (a git worktree)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    other_commit = subprocess.run(["git", "-C", args.other, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=True).stdout.strip()
    out = header("a3c_pairs")
    out.update(other=other_commit, steps=args.steps, pairs=[])
    for _ in range(args.pairs):
        theirs = one_run(os.path.join(args.other, "src"), args.steps)["frames_per_s"]
        ours = one_run(os.path.join(ROOT, "src"), args.steps)["frames_per_s"]
        out["pairs"].append({"other_frames_per_s": theirs, "this_frames_per_s": ours,
                             "ratio": round(ours / theirs, 3)})
    emit(out, args.out)


if __name__ == "__main__":
    main()
