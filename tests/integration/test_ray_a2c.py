"""A2C under the ray executor: data-parallel learners on a real 2-node Ray cluster
(tests/ray_cluster.py), gradients all-reduced every update (torch.distributed, gloo).

The equivalence: with matched seeds, 2 learners x 2 envs leave the parameters, optimiser
statistics and episodes of one sync learner with 4 envs, to floating-point rounding (the
gradient is a mean of means there and a mean here). And A2C data-parallel with the defaults
learns CartPole on the cluster (benchmarks/ray_a2c_cartpole.py measures it over seeds).
"""
from __future__ import annotations

import csv

import pytest
import torch

import asyncrl
from asyncrl import cli
from asyncrl.errors import ConfigError
from ray_cluster import local_cluster  # noqa: E402  (tests/ is on sys.path)

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(nodes=2, cpus_per_node=1) as c:
        yield c


def episodes(run_dir) -> list[tuple[str, str, str, str]]:
    with open(run_dir / "episodes.csv") as fh:
        return [(r["step"], r["worker"], r["return"], r["length"]) for r in csv.DictReader(fh)]


def test_two_learners_of_two_envs_are_one_sync_learner_of_four(cluster, tmp_path):
    """Same seeds: env i seeded seed + i and drawing the same sampling noise however the envs
    are split, the global batch's mean gradient, clipped by its global norm after the
    all-reduce. The parameters agree to 1e-6 (measured: 6e-8, i.e. rounding; without the
    partition-invariant sampling they differ by 4e-2), the RMSProp statistics to a relative
    1e-4 (measured: 4e-6), and every episode (step, env, return, length) is the same."""
    kw = dict(steps=3000, seed=0, eval_episodes=0, preset="none", progress=False)
    one = asyncrl.A2C("CartPole-v1", workers=4, executor="sync", device="cpu", vec_env="inline",
                      run_dir=str(tmp_path / "sync"), **kw)
    one.learn()
    two = asyncrl.A2C("CartPole-v1", workers=4, executor="ray", learners=2, run_dir=str(tmp_path / "ray"), **kw)
    two.learn()
    assert one.global_step == two.global_step == 3000
    assert torch.allclose(two.params, one.params, rtol=0, atol=1e-6), \
        f"max difference {(two.params - one.params).abs().max().item():.3g}"
    a, b = one.optimizer.state_dict()["square_avg"], two.optimizer.state_dict()["square_avg"]
    assert torch.allclose(b, a, rtol=1e-4, atol=1e-8)
    ea, eb = episodes(tmp_path / "sync"), episodes(tmp_path / "ray")
    assert len(ea) > 50 and ea == eb
    assert {w for _, w, _, _ in eb} == {"0", "1", "2", "3"}     # both learners' envs, by global index


def test_learners_zero_needs_workers_divisible_by_the_nodes(cluster):
    """learners 0 is one per node with CPUs (2 here): 3 workers cannot be split; said before
    any learner starts."""
    agent = asyncrl.A2C("CartPole-v1", workers=3, executor="ray", steps=100, eval_episodes=0, progress=False)
    with pytest.raises(ConfigError, match=r"^workers 3 is not a multiple of learners 2 \(learners 0: one per "
                                          r"node with CPUs, 2 here\)"):
        agent.learn()
    assert agent.global_step == 0


def test_workers_not_divisible_by_learners_is_one_line_and_exit_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli.main(["train", "a2c", "--env", "CartPole-v1", "--executor", "ray", "--workers", "5",
                     "--learners", "2", "--steps", "100", "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "workers 5 is not a multiple of learners 2" in err, err
    assert not run_dir.exists()


def test_a_block_sampler_gives_each_env_the_noise_of_one_learner_with_all_envs():
    """What makes the split invisible to acting: learner j's draws for its envs are rows
    jB .. jB + B - 1 of what one generator gives all N B envs (Gumbel noise: uniform;
    Gaussian policies: standard normal in float32)."""
    import numpy as np

    from asyncrl.executors.sync import BlockSampler

    for draw, dtype in (("random", np.float64), ("standard_normal", np.float32)):
        whole = np.random.default_rng(3)
        ref = [getattr(whole, draw)((6, 2), dtype=dtype) for _ in range(3)]
        parts = [BlockSampler(np.random.default_rng(3), 2 * j, 2, 6) for j in range(3)]
        for t in range(3):
            got = np.concatenate([getattr(p, draw)((2, 2), dtype=dtype) for p in parts])
            assert np.array_equal(got, ref[t])
    with pytest.raises(ValueError, match=r"draws for its 2 environments"):
        parts[0].random((3, 2))


def test_a2c_data_parallel_learns_cartpole_on_two_nodes(cluster, tmp_path):
    """The defaults (the classic preset: 8 environments, lr 5e-3), split between 2 learners
    on the 2 nodes: the mean of the last 100 training returns reaches 450 within 150k steps
    (measured: seeds 0, 1, 2 stopped at 70,360, 72,640 and 87,200 steps, 9-11 s each)."""
    agent = asyncrl.A2C("CartPole-v1", executor="ray", learners=2, seed=0, steps=150_000, stop_return=450,
                        eval_episodes=0, run_dir=str(tmp_path / "learn"), progress=False)
    agent.learn()
    assert agent.config.workers == 8
    assert agent.recent_return >= 450, (agent.global_step, agent.recent_return)
    assert agent.global_step < 150_000             # stopped early, solved
    assert {w for _, w, _, _ in episodes(tmp_path / "learn")} == {str(i) for i in range(8)}
