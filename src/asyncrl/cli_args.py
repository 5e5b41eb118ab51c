"""The command line's parser: its subcommands and flags (the training flags generated from
the Config fields, each with its default and where that default comes from), and the
argument helpers the commands share."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import fields

from .errors import EXIT_BAD_INPUT

# Training flags come from the Config fields; these are positional or set elsewhere.
NOT_FLAGS = {"algo", "env"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line (even when an argument holds a newline), no usage dump
        message = " ".join(message.splitlines())
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field; its help ends with the default, where that default comes
    from (sources.py) and what each family preset sets instead."""
    from .config import Config
    from .sources import default_note

    for f in fields(Config):
        if f.name in NOT_FLAGS:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = f"{default} here (the cores)" if f.name == "workers" else None
        note = f"({default_note(f.name, default, shown)})".replace("%", "%%")
        if isinstance(default, bool) or f.metadata.get("flag"):   # --x / --no-x (yes/no; auto when absent)
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=f"{help_} {note}")
            continue
        kw = {"metavar": f.name.upper(), "default": argparse.SUPPRESS}
        if f.metadata.get("nargs"):
            kw["nargs"] = f.metadata["nargs"]
        choices = f.metadata.get("choices")
        extra = f" [{'|'.join(choices)}]" if choices else ""
        p.add_argument(flag, dest=f.name, help=f"{help_}{extra} {note}", **kw)


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
                  "       permissions, a library an env needs); the last good checkpoint is kept\n"
                  "  130  interrupted (Ctrl-C or SIGTERM); the latest checkpoint is kept")
    raw = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="asyncrl", description="Asynchronous Methods for Deep Reinforcement Learning "
                                                 "(A3C and friends), fast and faithful.",
                     epilog=exit_codes, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"asyncrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    from .sources import SOURCES

    sources = "where defaults come from:\n" + "\n".join(f"  {tag:<10} {text}" for tag, text in SOURCES.items()) \
        + ("\n  preset auto (the default) picks the classic, continuous or paper preset by the env's family;"
           "\n  flags override a --config file, which overrides the preset, which overrides the defaults")
    t = sub.add_parser("train", help="train an agent; writes a run folder", epilog=sources + "\n\n" + exit_codes,
                       formatter_class=raw)
    t.add_argument("algo", metavar="ALGO", nargs="?", help=f"one of: {', '.join(ALGOS)} (with --resume: "
                                                           f"optional, the run folder's)")
    t.add_argument("--env", help="Gymnasium id, e.g. CartPole-v1 or my_module:MyEnv-v0 (with --resume: "
                                 "optional, the run folder's)")
    t.add_argument("--config", metavar="FILE", help="YAML file of options, or the name of a shipped one "
                   "(cartpole-a3c, pong-a3c, ...: docs, getting started) (flags given here override it)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", nargs="?", const="yes", default=None, metavar="auto",
                   help="continue the run in --run-dir from its latest checkpoint to the step it was aiming "
                        "at (same config, schedule, optimiser state, target network; logs appended): flags "
                        "that repeat the stored values are accepted, a changed value is refused, --steps may "
                        "be raised to train longer; --resume auto: resume if --run-dir holds a checkpoint, "
                        "else start a new run there")
    t.add_argument("--seeds", nargs="+", default=None, metavar="SEED",
                   help="train once per seed, one after another, each in <run-dir>/seed-<SEED> (`asyncrl plot "
                        "<run-dir>` then draws their mean and 95%% interval); instead of --seed")
    add_config_flags(t)

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
    e.add_argument("--overwrite", action="store_true", help="replace --video if it exists")
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
    add_config_flags(b)

    x = sub.add_parser("export", help="the greedy policy of a run as TorchScript or ONNX (docs: export)")
    x.add_argument("path", metavar="RUN", help="run folder or checkpoint file")
    x.add_argument("--format", default="torchscript", help="torchscript or onnx (the onnx extra) (default: "
                                                           "torchscript)")
    x.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    pl = sub.add_parser("plot", help="learning curves of one or more runs")
    pl.add_argument("runs", metavar="RUN", nargs="+", help="run folders, or folders of them (--seeds makes one)")
    pl.add_argument("--out", default=None, help="image file (default: learning_curve.png in the first RUN, "
                                                "replaced if it is there)")
    pl.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    pl.add_argument("--window", default="100", help="episodes in the moving average (default: 100)")
    pl.add_argument("--group", default="auto", metavar="auto|run",
                    help="auto: runs whose configurations differ only in seed (and logging, checkpoints, faults) "
                         "are one curve, their mean with a 95%% interval, labelled by the values in which the "
                         "groups differ; run: every run on its own (default: auto)")
    pl.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                    help="one label per RUN given: each RUN (and the runs under it) is one group so named")
    pl.add_argument("--panels", nargs="+", default=None, metavar="PANEL",
                    help="what to draw, some of: train (return against steps), time (against wall time), eval "
                         "(periodic evaluations), loss (one panel per loss) (default: train time, and eval "
                         "where a run has evaluations)")
    return parser


def int_arg(name: str, value: str, minimum: int) -> int:
    from .errors import ConfigError

    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if v < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {v}")
    return v


def config_values(args: argparse.Namespace) -> dict:
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
             if f.name not in NOT_FLAGS and hasattr(args, f.name)}
    values.update({k: coerce_field(k, v, source="--" + k.replace("_", "-")) for k, v in flags.items()})
    return values


