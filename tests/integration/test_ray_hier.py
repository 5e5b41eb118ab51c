"""The ray executor's hierarchical mode on a real multi-node Ray cluster on this machine
(tests/ray_cluster.py: a head with no CPUs and two 1-CPU worker nodes, each its own raylet):
A3C learns CartPole with one hogwild group per node; a node removed mid-run is survived
with T exact; a checkpoint carries the store's state and resumes."""
from __future__ import annotations

import pytest
import torch

import asyncrl
from asyncrl.callbacks import Callback
from ray_cluster import local_cluster  # noqa: E402  (tests/ is on sys.path)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(nodes=2, cpus_per_node=1) as c:
        yield c


def _agent(tmp_path, name, **kw):
    kw = {"seed": 0, "eval_episodes": 10, **kw}
    return asyncrl.A3C("CartPole-v1", executor="ray", workers=2, run_dir=str(tmp_path / name), progress=False, **kw)


def test_a3c_learns_cartpole_with_a_hogwild_group_on_each_node(cluster, tmp_path):
    # ray-mode auto: hierarchical on 2 nodes with CPUs; the defaults (benchmarks/
    # ray_hier_learning.py, S = 0.1: seeds 0-2 solved at 114,904, 95,853, 81,705 steps and
    # evaluated at 500 greedy after 200k). The bar leaves room for a loaded machine: with
    # 150k steps and a bar of 300 one run of make test here evaluated 194.3 (the random
    # policy: about 22)
    agent = _agent(tmp_path, "learn")
    agent.learn(200_000)
    executor = agent._executor
    assert executor.mode(ray) == "hierarchical"
    assert agent.global_step == 200_000             # T exact across the nodes
    assert agent.last_eval["mean_return"] >= 200, agent.last_eval
    nodes = {r["node"] for r in executor.group_results.values()}
    assert len(executor.group_results) == 2 and len(nodes) == 2     # one group on each node
    assert all(r["exchanges"] >= 3 for r in executor.group_results.values())
    workers = {int(line.split(",")[2]) for line in open(tmp_path / "learn" / "episodes.csv").readlines()[1:]}
    assert workers == {0, 1}                        # both groups' episodes reached the driver's log
    _learned.update(run=str(tmp_path / "learn"), step=agent.global_step, params=agent.params.clone(),
                    square_avg=agent.optimizer.state_dict()["square_avg"].clone())


_learned: dict = {}      # the first test's run, for the second


class _RemoveNode(Callback):
    def __init__(self, cluster, at: int):
        self.cluster, self.at, self.removed_at = cluster, at, None

    def on_metrics(self, agent, row):
        if self.removed_at is None and row["step"] >= self.at:
            self.removed_at = row["step"]
            # a node other than the driver's (the parameter store lives beside the driver: losing
            # that node is losing the driver, which a checkpoint covers); its raylet and processes go
            driver = ray.get_runtime_context().get_node_id()
            node = next(n for n in self.cluster.worker_nodes if n.node_id != driver)
            self.cluster.remove_node(node)


def test_a_checkpoint_carries_the_stores_state_and_resumes(cluster, tmp_path_factory):
    """The learning run's checkpoint (the previous test's folder): the store's theta, the
    nodes' RMSProp statistics and T; training goes on from it with T exact."""
    run = _learned.get("run")
    if run is None:
        pytest.skip("needs the learning run of this module's first test")
    again = asyncrl.load(run)
    assert again.global_step == _learned["step"]
    torch.testing.assert_close(again.params, _learned["params"])
    square_avg = again.optimizer.state_dict()["square_avg"]
    assert float(square_avg.abs().sum()) > 0                    # the nodes' statistics, not zeros
    torch.testing.assert_close(square_avg, _learned["square_avg"])
    again.learn(3_000)
    assert again.global_step == _learned["step"] + 3_000          # T exact after the resume


def test_a_node_lost_mid_run_is_survived_with_t_exact(cluster, tmp_path):
    # last in this module: it leaves the cluster one node short
    remove = _RemoveNode(cluster, at=10_000)
    agent = _agent(tmp_path, "lost", ray_mode="hierarchical", eval_episodes=0, max_worker_restarts=3)
    agent.learn(40_000, callback=remove)
    assert remove.removed_at is not None
    assert agent.global_step == 40_000              # the lost group's unreported steps were given back
    faults = open(tmp_path / "lost" / "faults.log").read()
    assert "node group" in faults and "was lost (its node or process died)" in faults
