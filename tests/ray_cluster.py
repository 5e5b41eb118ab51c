"""A real multi-node Ray cluster on this machine for the tests: Ray's own
`ray.cluster_utils.Cluster` starts a head node (no CPUs: nothing is scheduled on it) and
worker nodes, each with its own raylet and object store, all on this machine (the nodes
reach the GCS on the machine's own interface address; no test traffic leaves it).

    with local_cluster(nodes=2, cpus_per_node=1) as cluster:
        ...                      # ray is connected; cluster.worker_nodes: the nodes added
        cluster.remove_node(cluster.worker_nodes[1])
"""
from __future__ import annotations

import contextlib
import os
import sys

from asyncrl.executors.ray_cluster import WORKER_ENV


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1):
    import ray
    from ray.cluster_utils import Cluster

    path = os.pathsep.join(p or os.getcwd() for p in sys.path)   # the actors import toy_envs too
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus_per_node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="ERROR",
                 runtime_env={"env_vars": {"PYTHONPATH": path, **WORKER_ENV}})
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
