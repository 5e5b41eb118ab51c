"""A3C (or A2C) on Pong, this checkout against another one, one setting against another,
or against the peer (PFRL's A3C, SB3's A2C), in interleaved pairs.

Each pair runs the A3C row of atari_throughput.py (2 hogwild workers, `--preset atari`,
steady-state frames/s; with --algo a2c its A2C row, 16 environments) once with the other
checkout's `src` first on PYTHONPATH and the --other-set settings, and once with this
one's and the --set settings, each in a fresh interpreter: the other run first in even
pairs, this one first in odd pairs (ABBA). Interleaving spreads the machine's drift over
both. Prints one JSON.

    git worktree add /tmp/old <commit>
    python benchmarks/a3c_pairs.py --other /tmp/old [--pairs 3] [--steps 40000]
    python benchmarks/a3c_pairs.py --algo a2c --other-set vec_env=inline --set vec_env=threads
    python benchmarks/a3c_pairs.py --algo a2c --peer      # against SB3's A2C (a3c: PFRL's A3C)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, emit, header  # noqa: E402

ONE_RUN = """
import json, sys
sys.path.insert(0, {bench!r})
import asyncrl
from atari_throughput import run_asyncrl
r = run_asyncrl({algo!r}, {steps}, {workers}, **{overrides!r})
print(json.dumps({{"asyncrl": asyncrl.__file__, "frames_per_s": r["frames_per_s"], "vec_env": r.get("vec_env")}}))
"""
PEER_RUN = """
import json, sys
sys.path.insert(0, {bench!r})
from atari_throughput import {fn}
print(json.dumps({fn}({steps}, {args})))
"""
WORKERS = {"a3c": 2, "a2c": 16}
#: the peer each algorithm's row of atari_throughput.py is measured against
PEERS = {"a2c": ("run_sb3", "16, paper_cnn=True", "Stable-Baselines3 A2C, the paper's CNN, 16 envs",
                 "stable_baselines3"),
         "a3c": ("run_pfrl", "2", "PFRL 0.4 A3C, the paper's CNN, 2 processes", "pfrl")}


def settings(pairs: list[str]) -> dict:
    """KEY=VALUE strings as run_asyncrl overrides (values read as YAML: 3e-4, off, inline)."""
    out = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise SystemExit(f"a setting is KEY=VALUE (a config field, e.g. vec_env=threads), got {kv!r}")
        out[key.replace("-", "_")] = yaml.safe_load(value)
    return out


def one_run(src: str, steps: int, algo: str = "a3c", overrides: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    code = ONE_RUN.format(bench=os.path.join(ROOT, "benchmarks"), steps=steps, algo=algo, workers=WORKERS[algo],
                          overrides=overrides or {})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["asyncrl"].startswith(os.path.abspath(src)):
        raise SystemExit(f"ran {result['asyncrl']}, not the code under {src}")
    return result


def peer_run(steps: int, algo: str) -> dict:
    """The peer's row (SB3's A2C or PFRL's A3C) in a fresh interpreter."""
    fn, args, _, _ = PEERS[algo]
    code = PEER_RUN.format(bench=os.path.join(ROOT, "benchmarks"), fn=fn, steps=steps, args=args)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", default=ROOT, help="the other checkout (a git worktree); default: this one")
    ap.add_argument("--algo", choices=sorted(WORKERS), default="a3c")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of this checkout's runs (repeatable)")
    ap.add_argument("--other-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of the other checkout's runs (repeatable)")
    ap.add_argument("--peer", action="store_true",
                    help="the other run of each pair is the peer: SB3's A2C (--algo a2c) or PFRL's A3C (a3c)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    other_commit = subprocess.run(["git", "-C", args.other, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=True).stdout.strip()
    this, other = settings(args.set), settings(args.other_set)
    if args.pairs < 1:
        raise SystemExit(f"--pairs must be at least 1, got {args.pairs}")
    if args.peer and (other or not os.path.samefile(args.other, ROOT)):
        raise SystemExit("--peer runs the peer as the other run: no --other or --other-set with it")
    if args.peer and importlib.util.find_spec(PEERS[args.algo][3]) is None:
        raise SystemExit(f"{PEERS[args.algo][3]} is not installed: `make bench` (pip install -e '.[bench]') installs it")
    if not args.peer and os.path.samefile(args.other, ROOT) and this == other:
        raise SystemExit("nothing to compare: give --other CHECKOUT, or --set / --other-set that differ")
    out = header("a3c_pairs")
    out.update(algo=args.algo, workers=WORKERS[args.algo], other=PEERS[args.algo][2] if args.peer else other_commit,
               other_settings=other, this_settings=this, steps=args.steps)

    def run_theirs() -> dict:
        if args.peer:
            return peer_run(args.steps, args.algo)
        return one_run(os.path.join(args.other, "src"), args.steps, args.algo, other)

    def run_ours() -> dict:
        return one_run(os.path.join(ROOT, "src"), args.steps, args.algo, this)

    out.update(interleaved_pairs(run_ours, run_theirs, args.pairs, args.algo))
    emit(out, args.out)


def interleaved_pairs(run_ours, run_theirs, n: int, algo: str) -> dict:
    """n pairs of runs (each a dict with frames_per_s), ABBA: the other run goes first in
    even pairs, this one in odd pairs, so that a machine drifting one way over the session
    favours neither side. {"pairs": [...], "ratio_median", "ratio_range"}."""
    pairs = []
    for i in range(n):
        if i % 2 == 0:
            theirs, ours = run_theirs(), run_ours()
        else:
            ours, theirs = run_ours(), run_theirs()
        pair = {"first": "other" if i % 2 == 0 else "this", "other_frames_per_s": theirs["frames_per_s"],
                "this_frames_per_s": ours["frames_per_s"],
                "ratio": round(ours["frames_per_s"] / theirs["frames_per_s"], 3)}
        if algo == "a2c":
            pair.update(other_vec_env=theirs.get("vec_env", "DummyVecEnv"), this_vec_env=ours["vec_env"])
        pairs.append(pair)
    ratios = [p["ratio"] for p in pairs]
    return {"pairs": pairs, "ratio_median": round(statistics.median(ratios), 3),
            "ratio_range": [min(ratios), max(ratios)]}


if __name__ == "__main__":
    main()
