"""asyncrl.envs.check_env: an env that breaks the Gymnasium API is one clear EnvError in the
main process, before any worker starts; valid envs, and envs whose own code fails (a fault,
for the workers' restart budget), pass."""
import gymnasium as gym
import pytest

import bad_envs
import toy_envs  # noqa: F401  (registers toy_envs ids)
from asyncrl.envs import EnvFactory, check_env, env_api_problem, probe_spaces
from asyncrl.errors import EnvError


@pytest.mark.parametrize("env_id,needle", [
    ("bad_envs:OldStepAPI-v0", "step() (random action 1 of 10) returned 4 values (observation, reward, done, "
                               "info), the API of gym before 0.26"),
    ("bad_envs:OldResetAPI-v0", "reset() does not take seed="),
    ("bad_envs:ObsOutsideSpace-v0", "reset() returned an observation outside its space: element 1 is 5.0"),
    ("bad_envs:WrongDtype-v0", "reset() returned an observation of dtype float64; the observation space's "
                               "dtype is uint8"),
    ("bad_envs:WrongShape-v0", "reset() returned an observation of shape (4,)"),
    ("bad_envs:NaNObs-v0", "step() (random action 3 of 10) returned an observation holding nan (not finite)"),
    ("bad_envs:StringReward-v0", "returned the reward '1.0', not a number"),
    ("bad_envs:DiscreteObsOutOfRange-v0", "reset() returned the observation 7, outside Discrete(4)"),
])
def test_an_env_that_breaks_the_api_is_one_clear_line(env_id, needle):
    with pytest.raises(EnvError) as info:
        check_env(EnvFactory(env_id))
    msg = str(info.value)
    assert msg.startswith(f"environment {env_id!r} breaks the Gymnasium API: "), msg
    assert needle in msg, msg
    assert "\n" not in msg
    with pytest.raises(EnvError, match="breaks the Gymnasium API"):     # what Agent.__init__ calls
        probe_spaces(EnvFactory(env_id))


def test_the_raw_env_is_checked_too_without_gymnasiums_wrappers():
    """A factory's env (no TimeLimit, no passive checker) gets the same verdicts."""
    assert "returned 4 values" in env_api_problem(bad_envs.OldStepAPI())
    assert "reset() returned a ndarray, not (observation, info)" in env_api_problem(_SeededOldReset())


class _SeededOldReset(bad_envs.GoodBox):
    def reset(self, *, seed=None, options=None):
        return self.obs()


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1", "toy_envs:Chain-v0", "bad_envs:GoodBox-v0",
                                 "toy_envs:FailingReset-v0", "toy_envs:NaNRewardAlways-v0",
                                 "asyncrl.pomdp:CartPoleNoVelocity-v1"])
def test_valid_envs_and_faults_of_the_envs_own_code_pass(env):
    """Valid envs pass; so do an env that raises on every reset (a fault of its own code: the
    workers' restart budget handles it) and a NaN reward (the non-finite update defence)."""
    check_env(EnvFactory(env))
    obs, act = probe_spaces(EnvFactory(env))
    assert isinstance(obs, gym.Space) and isinstance(act, gym.Space)


def test_check_env_closes_the_env():
    closed = []

    class Closing(bad_envs.OldStepAPI):
        def close(self):
            closed.append(True)

    with pytest.raises(EnvError):
        check_env(EnvFactory(Closing))
    assert closed == [True]


def test_an_env_that_hangs_in_the_check_is_left_to_the_workers(monkeypatch):
    """The check gives up after CHECK_TIMEOUT_S (a hang is a fault: --worker-timeout handles
    it in the workers); the spaces are still read and no alarm is left behind."""
    import signal
    import time

    import asyncrl.envs as envs

    class Hangs(bad_envs.GoodBox):
        def reset(self, *, seed=None, options=None):
            time.sleep(60)

    monkeypatch.setattr(envs, "CHECK_TIMEOUT_S", 0.3)
    t0 = time.time()
    obs, _ = probe_spaces(EnvFactory(Hangs))
    check_env(EnvFactory(Hangs))
    assert time.time() - t0 < 5 and obs == bad_envs.GoodBox.observation_space
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
