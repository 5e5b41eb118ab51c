"""The Atari suite: train a list of games for a budget each, evaluate each with the
evaluation protocol, and write one table and one figure.

    .venv/bin/python benchmarks/atari_suite.py --games pong breakout --minutes 30 --out runs/suite

Each game trains in its own run folder, <out>/<game>, with `asyncrl train ... --resume auto`:
a suite stopped part way (Ctrl-C, a reboot) is started again with the same command and each
game resumes where its checkpoint left it (a finished game is evaluated again, not retrained).
The budget is wall time (`--minutes`, through --steps as an upper bound and a stop after that
many minutes) or global steps (`--steps`). Evaluation is the Atari protocol: whole games from
up to 30 no-op starts, epsilon-greedy with epsilon 0.05 (`asyncrl eval --epsilon 0.05`).

Written to --out: suite.json (per game: raw score, human-normalised score, steps; the mean,
median and interquartile mean of the human-normalised scores with 95% bootstrap intervals,
asyncrl.atari.scores.aggregate), suite.md (the same as a table) and suite.png (per-game bars
and the three aggregates with their intervals).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from asyncrl.atari.registry import REFERENCE_SCORES, REFERENCE_SOURCE, atari_id  # noqa: E402
from asyncrl.atari.scores import AGGREGATES, aggregate, fmt_percent, normalized  # noqa: E402

#: the paper's Figure 1 games
FIGURE_1 = ["beam_rider", "breakout", "pong", "qbert", "space_invaders"]


def train(game: str, args: argparse.Namespace) -> None:
    """Train (or resume) one game in <out>/<game>; a game already at its budget returns at once."""
    run = os.path.join(args.out, game)
    cmd = [sys.executable, "-m", "asyncrl", "train", args.algo, "--env", atari_id(game), "--run-dir", run,
           "--resume", "auto", "--workers", str(args.workers), "--steps", str(args.steps),
           "--eval-episodes", "0", "--quiet", *args.extra]
    timeout = 60 * args.minutes if args.minutes else None
    try:
        subprocess.run(cmd, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:       # the wall-time budget: SIGKILL'd runs resume from a checkpoint
        pass


def evaluate(game: str, args: argparse.Namespace) -> dict:
    run = os.path.join(args.out, game)
    p = subprocess.run([sys.executable, "-m", "asyncrl", "eval", run, "--episodes", str(args.episodes),
                        "--epsilon", "0.05", "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{game}: eval failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def table(rows: dict[str, dict], agg: dict) -> str:
    lines = ["| game | steps | raw score | random | human | human-normalised |", "|---|---:|---:|---:|---:|---:|"]
    for game, r in rows.items():
        random, human = REFERENCE_SCORES[game]
        lines.append(f"| {game} | {r['step']:,} | {r['raw']:.1f} | {random:g} | {human:g} | {fmt_percent(r['hns'])} |")
    lines += ["", "| aggregate | value | 95% bootstrap interval |", "|---|---:|---:|"]
    for name in AGGREGATES:
        a = agg[name]
        lines.append(f"| {name} | {fmt_percent(a['value'])} | {fmt_percent(a['low'])} to {fmt_percent(a['high'])} |")
    lines += ["", f"Reference scores: {REFERENCE_SOURCE}."]
    return "\n".join(lines) + "\n"


def figure(rows: dict[str, dict], agg: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    games = list(rows)
    ax1.bar(games, [100 * rows[g]["hns"] for g in games])
    ax1.axhline(100, color="gray", ls="--", lw=1, label="human")
    ax1.set_ylabel("human-normalised score (%)")
    ax1.tick_params(axis="x", rotation=45)
    ax1.legend()
    values = [100 * agg[n]["value"] for n in AGGREGATES]
    errors = [[100 * (agg[n]["value"] - agg[n]["low"]) for n in AGGREGATES],
              [100 * (agg[n]["high"] - agg[n]["value"]) for n in AGGREGATES]]
    ax2.bar(AGGREGATES, values, yerr=errors, capsize=6)
    ax2.set_title("over games (95% bootstrap CI)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--games", nargs="+", default=FIGURE_1, help=f"games (default: Figure 1's: {' '.join(FIGURE_1)})")
    p.add_argument("--algo", default="a3c")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=10_000_000, help="global steps per game (an upper bound with --minutes)")
    p.add_argument("--minutes", type=float, default=0.0, help="wall time per game (0: --steps only)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per game")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--out", default="runs/atari-suite")
    p.add_argument("--evaluate-only", action="store_true", help="evaluate the run folders as they are")
    p.add_argument("extra", nargs="*", help="after --: more `asyncrl train` options")
    args = p.parse_args(argv)
    unknown = [g for g in args.games if g not in REFERENCE_SCORES]
    if unknown:
        p.error(f"no reference scores for {unknown[0]!r}; the 57 games: {', '.join(sorted(REFERENCE_SCORES))}")
    os.makedirs(args.out, exist_ok=True)
    rows = {}
    for game in args.games:
        if not args.evaluate_only:
            train(game, args)
        result = evaluate(game, args)
        rows[game] = {"raw": result["mean_return"], "std": result["std_return"], "step": int(result.get("step", 0)),
                      "episodes": result["episodes"]}
    for game, hns in normalized({g: r["raw"] for g, r in rows.items()}).items():
        rows[game]["hns"] = hns
    agg = aggregate([r["hns"] for r in rows.values()], reps=args.reps)
    report = {"algo": args.algo, "workers": args.workers, "minutes": args.minutes, "steps": args.steps,
              "eval": {"episodes": args.episodes, "epsilon": 0.05, "noop_max": 30},
              "reference_scores": REFERENCE_SOURCE, "games": rows, "aggregates": agg}
    with open(os.path.join(args.out, "suite.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    with open(os.path.join(args.out, "suite.md"), "w") as fh:
        fh.write(table(rows, agg))
    figure(rows, agg, os.path.join(args.out, "suite.png"),
           f"{args.algo}, {args.workers} workers, {args.minutes or args.steps} "
           f"{'min' if args.minutes else 'steps'} per game")
    print(table(rows, agg))


if __name__ == "__main__":
    main()
