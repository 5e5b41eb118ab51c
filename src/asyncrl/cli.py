"""asyncrl command line: train | eval | bench | plot | export.

Every bad input ends in one line `asyncrl <cmd>: error: ...`, exit code 2, no traceback,
before any worker starts. Ctrl-C / SIGTERM during training saves a checkpoint and exits
with code 130. A run that fails keeps its latest checkpoint and exits with code 3 (a
worker kept failing: max-worker-restarts used up, or an env failure under sync) or 4 (too
many non-finite updates in a row, or parameters no longer finite); any command whose read
or write the operating system refuses (a full disk) exits with code 5 in one line, a run
with its last good checkpoint intact.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from .cli_args import build_parser, config_values, int_arg
from .cli_train import cmd_train
from .errors import EXIT_INTERRUPTED, command_line_words, exit_code
from .procs import repeated_interrupt
from .status import describe_eval as _describe_eval

__all__ = ["build_parser", "main"]


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import load
    from .config.limits import MAX_EVAL_EPISODES, MAX_SEED
    from .errors import ConfigError

    episodes = int_arg("--episodes", args.episodes, 1)
    seed = None if args.seed is None else int_arg("--seed", args.seed, 0)
    if episodes > MAX_EVAL_EPISODES:
        raise ConfigError(f"--episodes must be at most {MAX_EVAL_EPISODES:,}, got {episodes}")
    if seed is not None and seed + episodes - 1 > MAX_SEED:
        raise ConfigError(f"--seed must be at most {MAX_SEED - episodes + 1:,} with --episodes {episodes} (episode "
                          f"i is seeded with seed + i; NumPy takes seeds up to 2**32 - 1), got {seed}")
    epsilon = None
    if args.epsilon is not None:
        try:
            epsilon = float(args.epsilon)
        except ValueError:
            epsilon = -1.0
        if not 0 <= epsilon <= 1:
            raise ConfigError(f"--epsilon must be a number in [0, 1], got {args.epsilon!r}")
    video_episodes = int_arg("--video-episodes", args.video_episodes, 1)
    if args.video is not None:
        from .video import check_video_path

        check_video_path(args.video)
        _refuse_existing(args.video, "--video", args.overwrite)
        if video_episodes > episodes:
            raise ConfigError(f"--video-episodes must be at most --episodes ({episodes}), got {video_episodes}")
    agent = load(args.path, env=args.env)
    result = agent.evaluate(episodes, seed=seed, deterministic=not args.stochastic, epsilon=epsilon,
                            video=args.video, video_episodes=video_episodes)
    result = {"path": args.path, "algo": agent.algo, "env": args.env or agent.config.env,
              "step": agent.global_step, "greedy": not args.stochastic, **result}
    if args.json:
        print(json.dumps(result))
    else:
        frames = f" = {agent.global_step * agent.frames_per_step:,} frames" if agent.frames_per_step > 1 else ""
        print(f"{result['algo']} on {result['env']} (step {result['step']:,}{frames}): "
              f"{_describe_eval(result, result['greedy'])}")
        if args.video is not None:
            print(f"asyncrl: wrote {args.video} ({result['video_frames']:,} frames, "
                  f"{result['video_episodes']} episode{'s' if result['video_episodes'] > 1 else ''})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .api import AGENTS
    from .bench import run_bench
    from .config import Config

    values = config_values(args)
    steps = values.pop("steps", 20_000)
    env_steps = int_arg("--env-steps", args.env_steps, 1) if args.env_steps is not None else steps
    sync_envs = int_arg("--sync-envs", args.sync_envs, 1)
    workers = values.pop("workers", None)
    values.pop("run_dir", None)
    ray_address = values.pop("ray_address", "")
    with_ray = args.ray or bool(ray_address)
    # every option is checked (and the env built once) before anything is timed
    AGENTS[args.algo](args.env, workers=workers, steps=steps, **values)
    common = {**values, "algo": args.algo, "env": args.env, "steps": steps}
    Config.from_dict({**common, "workers": sync_envs, "executor": "sync"}).check()
    if with_ray:
        ray_workers = sync_envs if args.algo == "a2c" else workers     # a2c: the sync executor's envs
        Config.from_dict({**common, **({"workers": ray_workers} if ray_workers else {}), "executor": "ray",
                          "ray_address": ray_address}).check()
    print(f"asyncrl: benchmarking {args.algo} on {args.env} ({steps:,} agent steps per learner, "
          f"{env_steps:,} per env-alone process); run nothing else meanwhile", file=sys.stderr, flush=True)
    res = run_bench(args.algo, args.env, steps, env_steps, workers, sync_envs, ray=with_ray,
                    ray_address=ray_address, **values)
    if args.json:
        print(json.dumps(res))
        return 0
    frames = "frames_per_s" in res["env_alone"]
    unit = "frames/s" if frames else "steps/s"
    print(f"{'what':<44} {unit:>12} {'of env alone':>13}")
    ea = res["env_alone"]
    rows = [(f"env alone, {ea['processes']} processes, random actions", ea)]
    if "hogwild" in res:
        rows.append((f"{args.algo}, hogwild, {res['hogwild']['workers']} workers", res["hogwild"]))
    rows.append((f"{args.algo}, sync, {res['sync']['workers']} envs", res["sync"]))
    if "ray" in res:
        what = "envs, data-parallel learners" if args.algo == "a2c" else "actor-learners"
        rows.append((f"{args.algo}, ray, {res['ray']['workers']} {what}", res["ray"]))
    for name, r in rows:
        rate = r["frames_per_s"] if frames else r["steps_per_s"]
        whole = "" if r.get("steady_state", True) else "  (too short for a steady rate: start-up included)"
        print(f"{name:<44} {rate:>12,.0f} {r['of_env_alone']:>13.2f}{whole}")
    t = res.get("ray", {}).get("traffic")
    if t:
        server = "the driver (parameter server)" if t["mode"] == "flat" else "the parameter store"
        print(f"ray {t['mode']}: {t['bytes_per_step']:,.0f} bytes over the network per agent step; {server}: "
              f"{t['updates_per_s']:,.0f} updates/s, busy {t['server_busy_s']:.1f} s (capacity "
              f"{t['server_capacity_updates_per_s']:,.0f} updates/s on one core)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .api import load
    from .export import check_export_target, export_policy

    check_export_target(args.out, args.format, args.overwrite)    # before the checkpoint is read
    info = export_policy(load(args.path), args.out, args.format, args.overwrite)
    shown = ", ".join(f"{k} {v['dtype']} [{', '.join(map(str, v['shape']))}]" for k, v in info["inputs"].items())
    print(f"asyncrl: wrote {args.out} ({args.format}; {info['algo']} on {info['env']} at step {info['step']:,}): "
          f"{shown} -> {', '.join(info['outputs'])}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .config.limits import MAX_STEPS
    from .errors import ConfigError
    from .plot import plot_runs

    window = int_arg("--window", args.window, 1)
    if window > MAX_STEPS:
        raise ConfigError(f"--window must be at most {MAX_STEPS:,} episodes, got {window}")
    out = args.out or os.path.join(args.runs[0], "learning_curve.png")
    if args.out or not _asyncrl_made(args.runs[0]):     # the default file in asyncrl's run folders is asyncrl's
        _refuse_existing(out, "--out" if args.out else "plot file", args.overwrite)
    plot_runs(args.runs, out, window=window, group=args.group, labels=args.labels,
              panels=tuple(args.panels) if args.panels else None)
    print(f"asyncrl: wrote {out}")
    return 0


def _asyncrl_made(folder: str) -> bool:
    """A run folder asyncrl made, or a folder of them (--seeds); a path that is no folder has no marker."""
    from .curves import expand
    from .run import is_marked

    return all(is_marked(run) for run in expand(folder))


def _refuse_existing(path: str, flag: str, overwrite: bool) -> None:
    from .errors import ConfigError
    from .paths import existing_output

    problem = existing_output(path, flag, overwrite)
    if problem:
        raise ConfigError(problem)


def _sigterm_as_interrupt(signum, frame):
    if repeated_interrupt():        # `timeout` signals the main process, then its group
        return
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from .errors import AsyncRLError, NonFiniteError, WorkerError

    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"asyncrl {args.command}"
    if args.command == "train":
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        with command_line_words():
            return {"train": cmd_train, "eval": cmd_eval, "bench": cmd_bench, "plot": cmd_plot,
                    "export": cmd_export}[args.command](args)
    except (WorkerError, NonFiniteError) as exc:     # 3, 4: the message may carry a worker's traceback
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except (OSError, AsyncRLError) as exc:    # 5: the OS refused a read or a write; 2: bad input
        print(f"{prog}: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
