"""The Atari suite: train a list of games for a budget each, evaluate each with the
evaluation protocol, and write one table and one figure.

    .venv/bin/python benchmarks/atari_suite.py --games pong breakout --minutes 30 --out runs/suite

Each game trains in its own run folder, <out>/<game>, with `asyncrl train ... --resume auto`:
a suite stopped part way (Ctrl-C, a reboot) is started again with the same command and each
game resumes where its checkpoint left it (a game at its budget is evaluated again, not
retrained). The budget is wall time (`--minutes`: the training time the run folder holds,
its metrics.csv's wall_time, which goes on across resumes; the run is SIGTERMed when it is
spent, as a user's `timeout` would, and saves its checkpoint) or global steps (`--steps`, an
upper bound with --minutes). Evaluation is the Atari protocol: whole games from up to 30
no-op starts, epsilon-greedy with epsilon 0.05 (`asyncrl eval --epsilon 0.05`), not counted
in the budget.

Written to --out: suite.json (per game: raw score, its reference random and human scores,
the human-normalised score, steps, frames, minutes; the mean, median and interquartile mean
of the human-normalised scores with 95% bootstrap intervals, asyncrl.atari.scores.aggregate),
suite.md (the same as a table),
suite.png (per-game bars and the three aggregates with their intervals) and curves.png (each
game's training return against wall time, a panel per game). With --publish NAME
they are also copied to benchmarks/results/atari_suite_NAME.{json,md}, docs/atari_suite_NAME.png
and docs/atari_suite_NAME_curves.png; and each game, as soon as it is evaluated, leaves its
config.yaml, episodes.csv and table row (row.json) in benchmarks/results/atari_suite/NAME/<game>/.
A game with a published row.json and no run folder in --out (the suite goes on on another
machine, its run folders left behind) is taken from there, not trained again.

    .venv/bin/python benchmarks/atari_suite.py --minutes 30 --publish a3c-30min -- --rms-eps 1e-5 --lr 3e-4
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)

from _common import ROOT, header, train_for_minutes  # noqa: E402
from asyncrl.atari.registry import REFERENCE_SCORES, REFERENCE_SOURCE, atari_id  # noqa: E402
from asyncrl.atari.scores import AGGREGATES, aggregate, fmt_percent, normalized  # noqa: E402
from asyncrl.run import read_config  # noqa: E402

#: the paper's Figure 1 games
FIGURE_1 = ["beam_rider", "breakout", "pong", "qbert", "space_invaders"]
#: a game with less of its wall-time budget left than this is not resumed (a run's start,
#: imports and envs, takes seconds of it)
MIN_LEFT_S = 60.0
#: action repeat of the Atari preset: frames = agent steps x 4
FRAME_SKIP = 4


def spent_seconds(run: str) -> float:
    """The training wall time `run` holds: its last metrics.csv row's wall_time (0 without one)."""
    path = os.path.join(run, "metrics.csv")
    if not os.path.exists(path):
        return 0.0
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("wall_time")]
    return float(rows[-1]["wall_time"]) if rows else 0.0


def train(game: str, args: argparse.Namespace) -> None:
    """Train (or resume) one game in <out>/<game>; a game already at its budget returns at once."""
    run = os.path.join(args.out, game)
    cmd = [sys.executable, "-m", "asyncrl", "train", args.algo, "--env", atari_id(game), "--run-dir", run,
           "--resume", "auto", "--workers", str(args.workers), "--steps", str(args.steps),
           "--eval-episodes", "0", "--quiet", *args.extra]
    if not args.minutes:
        subprocess.run(cmd, check=False)
        return
    spent = spent_seconds(run)
    left = 60 * args.minutes - spent
    if left < MIN_LEFT_S:
        print(f"{game}: {spent / 60:.1f} minutes trained: at its budget", flush=True)
        return
    train_for_minutes(cmd, left / 60)


def fingerprint(run: str, args: argparse.Namespace) -> list:
    """What an evaluation of `run` depends on: its checkpoints (name, size, mtime) and the
    protocol's episodes."""
    folder = os.path.join(run, "checkpoints")
    names = sorted(n for n in os.listdir(folder) if n in ("latest.pt", "final.pt")) if os.path.isdir(folder) else []
    stats = [(n, os.stat(os.path.join(folder, n))) for n in names]
    return [args.episodes, 0.05] + [[n, st.st_size, st.st_mtime_ns] for n, st in stats]


def evaluate(game: str, args: argparse.Namespace) -> dict:
    """The game's evaluation by the protocol; kept in <out>/<game>/suite_eval.json and used
    again while its checkpoints are unchanged (a suite run again after a game at its budget)."""
    run = os.path.join(args.out, game)
    kept, key = os.path.join(run, "suite_eval.json"), fingerprint(run, args)
    if os.path.exists(kept):
        with open(kept) as fh:
            cached = json.load(fh)
        if cached.get("fingerprint") == key:
            return cached["result"]
    p = subprocess.run([sys.executable, "-m", "asyncrl", "eval", run, "--episodes", str(args.episodes),
                        "--epsilon", "0.05", "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{game}: eval failed: {p.stderr.strip()}")
    result = json.loads(p.stdout)
    with open(kept, "w") as fh:
        json.dump({"fingerprint": key, "result": result}, fh, indent=1)
    return result


def frame_skip(run: str) -> int:
    """The run's action repeat (config.yaml's frame_skip; the Atari preset's 4)."""
    return int(read_config(run)[0].get("frame_skip") or FRAME_SKIP)


def published(name: str, game: str) -> str:
    """Where --publish NAME keeps a game's logs and result: benchmarks/results/atari_suite/NAME/<game>."""
    return os.path.join(ROOT, "benchmarks", "results", "atari_suite", name, game)


def publish_game(name: str, game: str, args: argparse.Namespace, row: dict) -> None:
    """A game's logs (config.yaml, episodes.csv; not checkpoints) and its table row (row.json)
    into published(name, game), as soon as the game is evaluated: a suite that outlives its
    machine's run folders keeps the games it finished."""
    folder = published(name, game)
    os.makedirs(folder, exist_ok=True)
    for log in ("config.yaml", "episodes.csv"):
        if os.path.exists(os.path.join(args.out, game, log)):
            shutil.copy(os.path.join(args.out, game, log), folder)
    with open(os.path.join(folder, "row.json"), "w") as fh:
        json.dump(row, fh, indent=1)


def publish(name: str, args: argparse.Namespace) -> None:
    """The suite's files into benchmarks/results and docs."""
    results, docs = os.path.join(ROOT, "benchmarks", "results"), os.path.join(ROOT, "docs")
    for src, dst in (("suite.json", os.path.join(results, f"atari_suite_{name}.json")),
                     ("suite.md", os.path.join(results, f"atari_suite_{name}.md")),
                     ("suite.png", os.path.join(docs, f"atari_suite_{name}.png")),
                     ("curves.png", os.path.join(docs, f"atari_suite_{name}_curves.png"))):
        if os.path.exists(os.path.join(args.out, src)):
            shutil.copy(os.path.join(args.out, src), dst)


def table(rows: dict[str, dict], agg: dict) -> str:
    lines = ["| game | minutes | agent steps | frames | raw score | random | human | human-normalised |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for game, r in rows.items():
        random, human = REFERENCE_SCORES[game]
        lines.append(f"| {game} | {r.get('minutes', '')} | {r['step']:,} | {r.get('frames', 0):,} | {r['raw']:.1f} "
                     f"| {random:g} | {human:g} | {fmt_percent(r['hns'])} |")
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


def curves(logs: dict[str, str], path: str, window: int = 20) -> None:
    """Each game's training return (its episodes.csv; the mean of the last `window` episodes)
    against wall time, a panel per game: their scales differ by orders of magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asyncrl.plot import moving_average, read_episodes

    fig, axes = plt.subplots(1, len(logs), figsize=(3.6 * len(logs), 3.2), squeeze=False)
    for ax, (game, folder) in zip(axes[0], logs.items()):
        ep = read_episodes(folder)
        minutes = ep["wall_time"] / 60
        ax.plot(minutes, ep["return"], ".", ms=2, alpha=0.25)
        ax.plot(minutes, moving_average(ep["return"], window), lw=1.5)
        ax.set_title(game)
        ax.set_xlabel("wall time (minutes)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"training return (mean of last {window})")
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
    p.add_argument("--publish", metavar="NAME", help="copy the results into benchmarks/results and docs as NAME")
    p.add_argument("extra", nargs="*", help="after --: more `asyncrl train` options")
    args = p.parse_args(argv)
    unknown = [g for g in args.games if g not in REFERENCE_SCORES]
    if unknown:
        p.error(f"no reference scores for {unknown[0]!r}; the 57 games: {', '.join(sorted(REFERENCE_SCORES))}")
    os.makedirs(args.out, exist_ok=True)
    rows, logs = {}, {}
    for game in args.games:
        run = os.path.join(args.out, game)
        kept = os.path.join(published(args.publish, game), "row.json") if args.publish else ""
        if kept and os.path.exists(kept) and not os.path.isdir(run):
            with open(kept) as fh:
                rows[game] = json.load(fh)
            logs[game] = os.path.dirname(kept)
            print(f"{game}: no run folder in {args.out}: its published result, {os.path.relpath(kept, ROOT)}",
                  flush=True)
            continue
        if not args.evaluate_only:
            train(game, args)
        result = evaluate(game, args)
        step = int(result.get("step", 0))
        rows[game] = {"raw": result["mean_return"], "std": result["std_return"], "step": step,
                      "frames": step * frame_skip(run), "minutes": round(spent_seconds(run) / 60, 1),
                      "episodes": result["episodes"]}
        logs[game] = run
        if args.publish:
            publish_game(args.publish, game, args, rows[game])
    for game, hns in normalized({g: r["raw"] for g, r in rows.items()}).items():
        rows[game]["random"], rows[game]["human"] = REFERENCE_SCORES[game]
        rows[game]["hns"] = hns
    agg = aggregate([r["hns"] for r in rows.values()], reps=args.reps)
    report = {**header("atari_suite"), "algo": args.algo, "workers": args.workers, "minutes": args.minutes,
              "steps": args.steps, "train_args": args.extra,
              "eval": {"episodes": args.episodes, "epsilon": 0.05, "noop_max": 30},
              "reference_scores": REFERENCE_SOURCE, "games": rows, "aggregates": agg}
    with open(os.path.join(args.out, "suite.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    with open(os.path.join(args.out, "suite.md"), "w") as fh:
        fh.write(table(rows, agg))
    figure(rows, agg, os.path.join(args.out, "suite.png"),
           f"{args.algo}, {args.workers} workers, {args.minutes or args.steps} "
           f"{'min' if args.minutes else 'steps'} per game")
    curves({g: logs[g] for g in args.games}, os.path.join(args.out, "curves.png"))
    if args.publish:
        publish(args.publish, args)
    print(table(rows, agg))


if __name__ == "__main__":
    main()
