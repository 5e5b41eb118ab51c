"""asyncrl command line: train | eval | bench | plot | export.

Every bad input ends in one line `asyncrl <cmd>: error: ...`, exit code 2, no traceback,
before any worker starts. Ctrl-C / SIGTERM during training saves a checkpoint and exits
with code 130. A run that fails keeps its latest checkpoint and exits with code 3 (a
worker kept failing: max-worker-restarts used up, or an env failure under sync) or 4 (too
many non-finite updates in a row, or parameters no longer finite); one whose run folder
cannot be written (a full disk) exits with code 5, its last good checkpoint intact.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import fields

from .errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_IO_FAILED, EXIT_NONFINITE, EXIT_WORKER_FAILED
from .status import describe_eval as _describe_eval
from .status import run_and_report

# Training flags come from the Config fields; these are positional or set elsewhere.
_NOT_FLAGS = {"algo", "env"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line (even when an argument holds a newline), no usage dump
        message = " ".join(message.splitlines())
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    from .config import Config

    for f in fields(Config):
        if f.name in _NOT_FLAGS:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        default = f.default
        if isinstance(default, bool) or f.metadata.get("flag"):   # --x / --no-x (yes/no; auto when absent)
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=f"{help_} (default: {default})")
            continue
        kw = {"metavar": f.name.upper(), "default": argparse.SUPPRESS}
        if f.metadata.get("nargs"):
            kw["nargs"] = f.metadata["nargs"]
        shown = f.default_factory() if default is dataclasses.MISSING else default
        choices = f.metadata.get("choices")
        extra = f" [{'|'.join(choices)}]" if choices else ""
        p.add_argument(flag, dest=f.name, help=f"{help_}{extra} (default: {shown})", **kw)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .config import ALGOS

    exit_codes = ("exit codes:\n"
                  "  0    done\n"
                  "  2    bad input: one line on stderr naming the bad value and what is accepted;\n"
                  "       nothing started, nothing written\n"
                  "  3    workers failed past the restart budget (--max-worker-restarts), or an\n"
                  "       environment failed under the sync executor\n"
                  "  4    non-finite: too many inf/nan updates in a row, or parameters no longer finite\n"
                  "  5    I/O failure: the operating system refused a read or a write (disk full,\n"
                  "       permissions); the last good checkpoint is kept\n"
                  "  130  interrupted (Ctrl-C or SIGTERM); the latest checkpoint is kept")
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="asyncrl", description="Asynchronous Methods for Deep Reinforcement Learning "
                                                 "(A3C and friends), fast and faithful.",
                     epilog=exit_codes, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"asyncrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train an agent; writes a run folder", epilog=exit_codes, formatter_class=raw)
    t.add_argument("algo", metavar="ALGO", nargs="?", help=f"one of: {', '.join(ALGOS)} (with --resume: "
                                                           f"optional, the run folder's)")
    t.add_argument("--env", help="Gymnasium id, e.g. CartPole-v1 or my_module:MyEnv-v0 (with --resume: "
                                 "optional, the run folder's)")
    t.add_argument("--config", metavar="FILE", help="YAML file of options (flags given here override it)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", nargs="?", const="yes", default=None, metavar="auto",
                   help="continue the run in --run-dir from its latest checkpoint to the step it was aiming "
                        "at (same config, schedule, optimiser state, target network; logs appended): flags "
                        "that repeat the stored values are accepted, a changed value is refused, --steps may "
                        "be raised to train longer; --resume auto: resume if --run-dir holds a checkpoint, "
                        "else start a new run there")
    _add_config_flags(t)

    e = sub.add_parser("eval", help="evaluate a run folder or checkpoint")
    e.add_argument("path", metavar="PATH", help="run folder or checkpoint file")
    e.add_argument("--episodes", default="10", help="number of episodes (default: 10)")
    e.add_argument("--seed", default=None, help="seed of the first episode (default: training seed + 10000)")
    e.add_argument("--env", default=None, help="evaluate on this env id instead of the saved one")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of acting greedily")
    e.add_argument("--epsilon", default=None,
                   help="take a uniformly random action with this probability (default: the run's "
                        "eval-epsilon; 0.05 is the Atari literature's protocol)")
    e.add_argument("--video", default=None, metavar="FILE",
                   help="record the first episode(s) as they render to FILE (.mp4 or .gif)")
    e.add_argument("--video-episodes", default="1", metavar="N",
                   help="episodes in the video (default: 1)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    b = sub.add_parser("bench", help="throughput of the executors against the environment alone")
    b.add_argument("algo", metavar="ALGO", help=f"one of: {', '.join(ALGOS)}")
    b.add_argument("--env", required=True, help="Gymnasium id, e.g. CartPole-v1 or ALE/Pong-v5")
    b.add_argument("--config", metavar="FILE", help="YAML file of options (flags given here override it)")
    b.add_argument("--env-steps", default=None, metavar="N",
                   help="agent steps per env-alone process (default: --steps)")
    b.add_argument("--sync-envs", default="16", metavar="N",
                   help="environments of the sync executor's run (default: 16)")
    b.add_argument("--ray", action="store_true",
                   help="time the ray executor too (a local Ray, or the cluster of --ray-address)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    _add_config_flags(b)

    x = sub.add_parser("export", help="the greedy policy of a run as TorchScript or ONNX (docs: export)")
    x.add_argument("path", metavar="RUN", help="run folder or checkpoint file")
    x.add_argument("--format", default="torchscript", help="torchscript or onnx (the onnx extra) (default: "
                                                           "torchscript)")
    x.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    pl = sub.add_parser("plot", help="learning curves of one or more runs")
    pl.add_argument("runs", metavar="RUN", nargs="+", help="run folders")
    pl.add_argument("--out", default=None, help="PNG file (default: learning_curve.png in the first run)")
    pl.add_argument("--window", default="100", help="episodes in the moving average (default: 100)")
    return parser


def _int_arg(name: str, value: str, minimum: int) -> int:
    from .errors import ConfigError

    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if v < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {v}")
    return v


def _config_values(args: argparse.Namespace) -> dict:
    """The options of `train`/`bench`: the --config file's, overridden by the flags given."""
    from .config import ALGOS, Config, coerce_field, load_config_file
    from .errors import ConfigError

    if args.algo is not None and args.algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {args.algo!r}; choose one of: {', '.join(ALGOS)}")
    values = load_config_file(args.config) if args.config else {}
    for key in ("algo", "env"):
        if key in values:
            raise ConfigError(f"config file {args.config!r}: {key!r} is given on the command line, not in the file")
    flags = {f.name: getattr(args, f.name) for f in fields(Config)
             if f.name not in _NOT_FLAGS and hasattr(args, f.name)}
    values.update({k: coerce_field(k, v, source="--" + k.replace("_", "-")) for k, v in flags.items()})
    return values


def cmd_train(args: argparse.Namespace) -> int:
    """`asyncrl train`; an OSError wherever it comes from (the run folder cannot be written:
    a full disk, a file-size limit, permissions) is one line and exit code 5."""
    try:
        return _train(args)
    except OSError as exc:
        print(f"asyncrl train: error: {exc}", file=sys.stderr)
        return EXIT_IO_FAILED


def _train(args: argparse.Namespace) -> int:
    from .api import AGENTS
    from .errors import ConfigError
    from .executors import make_executor
    from .resume import has_checkpoint
    from .run import is_marked

    _resume_mode(args)
    values = _config_values(args)
    run_dir = values.pop("run_dir", "")
    if args.resume:
        if args.overwrite:
            raise ConfigError("--resume continues the run in --run-dir and --overwrite would replace it; give one")
        if not run_dir:
            raise ConfigError("--resume needs --run-dir DIR, the run folder to continue")
        if args.resume == "yes" or has_checkpoint(run_dir):
            return _resume(args, values, run_dir)
    if args.algo is None or args.env is None:
        what = "ALGO" if args.algo is None else "--env ENV"
        raise ConfigError(f"{what} is required to start a run"
                          + (f" ({run_dir!r} holds no checkpoint to resume)" if args.resume else ""))
    run_dir = run_dir or _default_run_dir(args.algo, args.env)
    # --resume auto, no checkpoint: a run stopped before its first checkpoint starts afresh
    # (only from a folder asyncrl made, and only asyncrl's files are replaced)
    overwrite = args.overwrite or (args.resume == "auto" and is_marked(run_dir))
    workers = values.pop("workers", None)
    agent = AGENTS[args.algo](args.env, workers=workers, run_dir=run_dir, overwrite=overwrite,
                              progress=False if args.quiet else None, **values)
    cfg = agent.config
    how = make_executor(cfg).describe()
    frames = f" ({cfg.steps * agent.frames_per_step:,} emulator frames)" if agent.frames_per_step > 1 else ""
    print(f"asyncrl: training {cfg.algo} on {cfg.env} with {how} for {cfg.steps:,} agent steps{frames} "
          f"-> {run_dir}", file=sys.stderr, flush=True)
    return run_and_report(agent.learn, agent, run_dir)


def _resume_mode(args: argparse.Namespace) -> None:
    """--resume takes no value or `auto`; `--resume ALGO ...` (argparse gives ALGO to --resume) is ALGO."""
    from .config import ALGOS
    from .errors import ConfigError

    if args.resume in (None, "yes", "auto"):
        return
    if args.algo is None and args.resume in ALGOS:
        args.algo, args.resume = args.resume, "yes"
        return
    raise ConfigError(f"--resume takes no value or 'auto', got {args.resume!r}")


def _resume(args: argparse.Namespace, values: dict, run_dir: str) -> int:
    from .errors import ConfigError
    from .resume import has_checkpoint, load_for_resume

    if not has_checkpoint(run_dir):
        raise ConfigError(f"--resume: {run_dir!r} has no checkpoints/latest.pt to continue from "
                          f"(--resume auto starts a new run then)")
    agent = load_for_resume(run_dir, args.algo, args.env, values, progress=False if args.quiet else None)
    start, target = agent.global_step, agent.schedule[1]
    if start >= target:
        print(f"asyncrl: {run_dir} already reached its target of {target:,} steps; nothing to do (raise --steps "
              f"to train longer)", file=sys.stderr, flush=True)
        return 0
    print(f"asyncrl: resuming {agent.algo} on {agent.config.env} at step {start:,} of {target:,} "
          f"-> {run_dir}", file=sys.stderr, flush=True)
    return run_and_report(agent.resume, agent, run_dir)


def _default_run_dir(algo: str, env: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in env)
    return os.path.join("runs", f"{algo}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}")


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import load
    from .config.limits import MAX_EVAL_EPISODES, MAX_SEED
    from .errors import ConfigError

    episodes = _int_arg("--episodes", args.episodes, 1)
    seed = None if args.seed is None else _int_arg("--seed", args.seed, 0)
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
    video_episodes = _int_arg("--video-episodes", args.video_episodes, 1)
    if args.video is not None:
        from .video import check_video_path

        check_video_path(args.video)
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

    values = _config_values(args)
    steps = values.pop("steps", 20_000)
    env_steps = _int_arg("--env-steps", args.env_steps, 1) if args.env_steps is not None else steps
    sync_envs = _int_arg("--sync-envs", args.sync_envs, 1)
    workers = values.pop("workers", None)
    values.pop("run_dir", None)
    ray_address = values.pop("ray_address", "")
    with_ray = args.ray or bool(ray_address)
    # every option is checked (and the env built once) before anything is timed
    AGENTS[args.algo](args.env, workers=workers, steps=steps, **values)
    common = {**values, "algo": args.algo, "env": args.env, "steps": steps}
    Config.from_dict({**common, "workers": sync_envs, "executor": "sync"}).check()
    if with_ray:
        Config.from_dict({**common, **({"workers": workers} if workers else {}), "executor": "ray",
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
        rows.append((f"{args.algo}, ray, {res['ray']['workers']} actor-learners", res["ray"]))
    for name, r in rows:
        rate = r["frames_per_s"] if frames else r["steps_per_s"]
        whole = "" if r.get("steady_state", True) else "  (too short for a steady rate: start-up included)"
        print(f"{name:<44} {rate:>12,.0f} {r['of_env_alone']:>13.2f}{whole}")
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

    window = _int_arg("--window", args.window, 1)
    if window > MAX_STEPS:
        raise ConfigError(f"--window must be at most {MAX_STEPS:,} episodes, got {window}")
    out = args.out or os.path.join(args.runs[0], "learning_curve.png")
    plot_runs(args.runs, out, window=window)
    print(f"asyncrl: wrote {out}")
    return 0


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from .errors import AsyncRLError, NonFiniteError, WorkerError

    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"asyncrl {args.command}"
    if args.command == "train":
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        return {"train": cmd_train, "eval": cmd_eval, "bench": cmd_bench, "plot": cmd_plot,
                "export": cmd_export}[args.command](args)
    except (WorkerError, NonFiniteError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_WORKER_FAILED if isinstance(exc, WorkerError) else EXIT_NONFINITE
    except AsyncRLError as exc:      # bad input: one line, whatever the message holds
        print(f"{prog}: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
