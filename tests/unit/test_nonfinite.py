"""Numerical faults: a non-finite gradient is never applied; too many in a row, or
parameters that are no longer finite, stop training; nothing non-finite is checkpointed."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import asyncrl
from asyncrl.errors import NonFiniteError
from asyncrl.learner import make_learner
from asyncrl.rollout import EpisodeSegmentCollector


def learner_and_rollouts(n: int = 4, **hp):
    """A sync learner on a fresh A3C agent's CartPole parameters, and n random segments
    (cloned: the collector reuses its buffers)."""
    agent = asyncrl.A3C("CartPole-v1", workers=1, eval_episodes=0, **hp)
    ln = make_learner(agent.config, agent.observation_space, agent.action_space, agent.params, None,
                      agent.optimizer, (0, 1000), local_copy=False)
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    col = EpisodeSegmentCollector(env, agent.algorithm.segment_length, 0)
    rollouts = []
    for _ in range(n):
        ro, _ = col.collect(lambda obs: rng.integers(0, 2, (1,)), agent.algorithm.segment_length)
        rollouts.append(type(ro)(**{k: None if v is None else v.clone() for k, v in vars(ro).items()}))
    return agent, ln, rollouts


def poisoned(ro):
    ro.rewards[0, 0] = float("nan")
    return ro


def optimizer_state(agent):
    return {k: v.clone() for k, v in agent.optimizer.state_dict().items()}


def test_a_nan_gradient_is_skipped_counted_and_never_applied():
    """A nan reward makes the loss and gradient non-finite: update() returns False, counts
    it, and leaves the parameters and the optimiser statistics exactly as they were; the
    next finite update is applied and ends the streak."""
    agent, ln, ros = learner_and_rollouts()
    params, state = agent.params.clone(), optimizer_state(agent)
    assert ln.update(poisoned(ros[0]), 5) is False
    assert ln.skipped == 1 and ln.nonfinite_streak == 1 and ln.updates == 0
    assert torch.equal(agent.params, params)
    assert all(torch.equal(v, state[k]) for k, v in agent.optimizer.state_dict().items())
    assert ln.update(ros[1], 10) is True
    assert ln.nonfinite_streak == 0 and torch.isfinite(agent.params).all()
    assert not torch.equal(agent.params, params)


def test_too_many_nonfinite_updates_in_a_row_raise():
    """With max_nonfinite_updates 3, the third non-finite update in a row raises
    NonFiniteError (a finite update in between starts the count again)."""
    agent, ln, ros = learner_and_rollouts(6, max_nonfinite_updates=3)
    assert ln.update(poisoned(ros[0]), 5) is False
    assert ln.update(poisoned(ros[1]), 10) is False
    assert ln.update(ros[2], 15) is True
    assert ln.update(poisoned(ros[3]), 20) is False
    assert ln.update(poisoned(ros[4]), 25) is False
    with pytest.raises(NonFiniteError, match=r"^3 non-finite updates in a row \(max-nonfinite-updates 3\) at step 30"):
        ln.update(poisoned(ros[5]), 30)


def test_zero_means_never_stop():
    """max_nonfinite_updates 0: skipped forever, never raised."""
    agent, ln, ros = learner_and_rollouts(1, max_nonfinite_updates=0)
    for step in range(200):
        assert ln.update(poisoned(ros[0]), step) is False
    assert ln.nonfinite_streak == 200


def test_parameters_that_are_no_longer_finite_stop_training_at_the_first_skip():
    """If the parameters themselves hold an inf, the first non-finite gradient raises at
    once instead of skipping up to the limit (nothing could train on from there)."""
    agent, ln, ros = learner_and_rollouts(2)
    agent.params[3] = float("inf")
    ln.update(ros[0], 5)          # an inf weight can still get a finite gradient (a dead ReLU)...
    with pytest.raises(NonFiniteError, match="the parameters are no longer finite .* at step 10"):
        ln.update(poisoned(ros[1]), 10)


def test_the_periodic_checkpoint_stops_a_run_whose_parameters_are_not_finite(tmp_path):
    """... so the periodic checkpoint also checks: with an inf weight it writes nothing and
    raises NonFiniteError (then training stops within one checkpoint interval)."""
    agent = asyncrl.A3C("CartPole-v1", workers=1, eval_episodes=0, run_dir=str(tmp_path / "run"))
    agent.params[3] = float("inf")
    with pytest.raises(NonFiniteError, match="at step 100"):
        agent._periodic_checkpoint(100)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_nonfinite_parameters_are_never_checkpointed(tmp_path, capsys):
    """A run checkpoint is refused when the parameters are not finite: latest.pt keeps the
    last good one (its bytes unchanged), no step-<N>.pt is added, and a warning says why."""
    agent = asyncrl.A3C("CartPole-v1", workers=1, eval_episodes=0, run_dir=str(tmp_path / "run"))
    good = agent._checkpoint_run()
    folder = tmp_path / "run" / "checkpoints"
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    assert set(before) == {"latest.pt", "step-0.pt"}
    agent.params[0] = float("nan")
    agent.global_step = 500
    assert agent._checkpoint_run(final=True) is None
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    assert "not checkpointing: the model state is not finite" in capsys.readouterr().err
    assert torch.isfinite(asyncrl.load(good).params).all()


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")   # NumPy acting on inf weights
def test_an_optimiser_step_that_overflows_stops_the_run_and_keeps_the_good_checkpoint(tmp_path):
    """For real: a learning rate of 3e38 makes the first RMSProp step overflow float32, so
    the parameters become inf although the gradient was finite. Training stops with
    NonFiniteError at the next update, and the checkpoint written before training (finite
    parameters, step 0) is not overwritten by the inf ones."""
    agent = asyncrl.A2C("CartPole-v1", workers=2, lr=3e38, eval_episodes=0, device="cpu",
                        run_dir=str(tmp_path / "run"))
    agent._checkpoint_run()
    with pytest.raises(NonFiniteError, match="the parameters are no longer finite"):
        agent.learn(10_000)
    assert not torch.isfinite(agent.params).all()
    saved = asyncrl.load(str(tmp_path / "run" / "checkpoints" / "latest.pt"))
    assert saved.global_step == 0 and torch.isfinite(saved.params).all()
    assert not (tmp_path / "run" / "checkpoints" / "final.pt").exists()


def test_a_hogwild_update_refreshes_theta_prime_and_a_skipped_one_leaves_the_pull_to_do():
    """A hogwild learner's update copies theta into its theta' as it writes it (a fused pull):
    theta' equals the shared parameters after an applied update, and pull() then copies
    nothing (theta' is theta as of this worker's update, microseconds before the next segment;
    a later write reaches it with the next update). A skipped (non-finite) update refreshes
    nothing, so the next pull() copies theta."""
    from asyncrl.learner import make_learner

    agent, _, ros = learner_and_rollouts(3)
    ln = make_learner(agent.config, agent.observation_space, agent.action_space, agent.params, None,
                      agent.optimizer, (0, 1000), 0, local_copy=True)
    assert ln.local is not ln.params
    ln.pull()
    assert torch.equal(ln.local, agent.params)
    assert ln.update(ros[0], 5) is True
    assert torch.equal(ln.local, agent.params)
    agent.params.add_(1.0)                      # another worker's update lands before the pull
    ln.pull()                                   # already refreshed by the update: no copy
    assert torch.equal(ln.local + 1.0, agent.params)
    assert ln.update(poisoned(ros[1]), 10) is False
    ln.pull()                                   # nothing refreshed theta': a full copy
    assert torch.equal(ln.local, agent.params)
