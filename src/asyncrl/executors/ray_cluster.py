"""The ray executor's cluster: checking a --ray-address, connecting to the cluster (or
starting a local Ray) and checking that it has a CPU for each actor-learner."""
from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
import warnings
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..system import available_cores


#: the environment of the actors of a local Ray: Ray runs its worker processes at niceness 15
#: (so that they yield to its own daemons), which on a busy machine starves the actor-learners
#: against anything else (a hogwild run, a test beside it: 5x slower here); theirs is 0, as a
#: hogwild worker's
WORKER_ENV = {"RAY_worker_niceness": "0"}


def import_ray():
    try:
        import ray
    except ImportError as exc:      # Config.check says so first; this is for direct callers
        raise ConfigError("executor 'ray' needs the ray package: pip install 'asyncrl[ray]'") from exc
    return ray


def other_cluster(ray, address: str) -> str | None:
    """The GCS address of the Ray this process is connected to, when `address` (a HOST:PORT
    ray-address) names another one (another port, or a host that resolves elsewhere); else
    None. 'auto', empty and Ray Client (ray://) addresses are not compared."""
    if not address or address == "auto" or address.startswith("ray://"):
        return None
    try:
        current = ray.get_runtime_context().gcs_address
    except Exception:             # no GCS address to compare with
        return None
    host, _, port = address.rpartition(":")
    chost, _, cport = current.rpartition(":")
    if port != cport:
        return current
    try:
        ip = socket.gethostbyname(host)
        # a loopback host is this machine, whose Ray reports its node's address instead
        same = ip.startswith("127.") or ip == socket.gethostbyname(chost)
    except OSError:
        return None
    return None if same else current


#: seconds ray_address_problem waits for a TCP connection to a Ray cluster's address
RAY_PROBE_TIMEOUT_S = 5.0


def ray_address_problem(address: str, probe: bool) -> str | None:
    """What is wrong with a --ray-address ('auto', HOST:PORT or ray://HOST:PORT), or None.
    probe: also open a TCP connection to HOST:PORT ('auto': to the cluster Ray would find,
    from RAY_ADDRESS or the last `ray start` on this machine)."""
    if address == "auto":
        if not probe:
            return None
        try:    # what ray.init(address="auto") does first (a private helper; skipped if it moved)
            from ray._private.services import canonicalize_bootstrap_address
        except Exception:
            return None
        try:
            found = canonicalize_bootstrap_address("auto")
        except Exception as exc:
            return (f"ray-address 'auto': no running Ray cluster was found ({str(exc).split('.')[0]}); "
                    f"start one with `ray start --head`, or leave ray-address empty for a local Ray")
        return ray_address_problem(found, probe=True) if found else None
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = hostport.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return (f"ray-address {address!r} is not an address of a Ray cluster; give 'auto', HOST:PORT "
                f"(the GCS, as `ray start --head` prints it) or ray://HOST:PORT (Ray Client)")
    if not probe:
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return (f"ray-address {address!r}: could not connect to a Ray cluster there "
                f"({exc.strerror or exc}); start one with `ray start --head` and give the address "
                f"it prints, or leave ray-address empty for a local Ray")
    return None


def connect(ray, cfg: Config) -> bool:
    """Join the configured cluster, or start a local Ray; True when this run started it
    (and so shuts it down at the end). A Ray the caller already started is used as is,
    with a warning if ray-address names another cluster."""
    if ray.is_initialized():
        other = other_cluster(ray, cfg.ray_address)
        if other:
            warnings.warn(f"ray-address {cfg.ray_address!r} is not used: this process is already "
                          f"connected to the Ray at {other}, which the run uses; call ray.shutdown() "
                          f"first to run on the other cluster", UserWarning, stacklevel=2)
        return False
    address = cfg.ray_address or "local"      # "local": not RAY_ADDRESS nor a `ray start`
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address == "local":
        # hogwild's rule: the workers may outnumber the cores (they then take turns); and the
        # actors import what this process can (a forked hogwild worker inherits sys.path): the
        # modules of `module:Id` env ids and of env factories, from the current folder too
        path = os.pathsep.join(p or os.getcwd() for p in sys.path)
        kwargs.update(num_cpus=max(available_cores(), cfg.workers), include_dashboard=False,
                      runtime_env={"env_vars": {"PYTHONPATH": path, **WORKER_ENV}})
    sigterm = signal.getsignal(signal.SIGTERM)   # ray.init installs its own: keep the CLI's
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray" if address == "local" else \
            f"connect to the Ray cluster at ray-address {cfg.ray_address!r}"
        hint = ""
        if address not in ("local", "auto") and not os.environ.get("RAY_AUTH_MODE"):
            # Ray sends its token to an explicit address only when told to (`auto` finds it)
            hint = ("; a cluster started by `ray start` checks a token by default: set "
                    "RAY_AUTH_MODE=token (the token is in ~/.ray/auth_token or RAY_AUTH_TOKEN), "
                    "or use --ray-address auto on its head node")
        raise ConfigError(f"could not {where}: {str(exc).splitlines()[0]}{hint}") from exc
    finally:
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
    return True


def check_capacity(ray, workers: int) -> None:
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        raise ConfigError(f"workers {workers}: the Ray cluster has {cpus:g} CPUs and each "
                          f"actor-learner takes one; use --workers {int(cpus)} or fewer, or add nodes")


def cpu_nodes(ray) -> list[dict]:
    """The cluster's alive nodes that have CPUs (ray.nodes() entries), in a stable order:
    the nodes a hierarchical run spreads its groups over."""
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    return sorted(nodes, key=lambda n: n["NodeID"])


def remote_error(exc: BaseException) -> tuple[str, str]:
    """(its last line, e.g. 'RuntimeError: ...'; the whole text) of an error Ray brought back
    from an actor, colour codes removed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).rstrip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return (lines[-1].strip() if lines else type(exc).__name__), text
