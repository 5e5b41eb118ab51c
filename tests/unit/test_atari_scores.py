"""The Atari suite's data and arithmetic: the 57 games' reference scores (each id made with
ale-py), human-normalised scores, and the mean, median and IQM with bootstrap intervals on
made-up scores worked out by hand."""
from __future__ import annotations

import pytest

from asyncrl.atari.registry import REFERENCE_SCORES, REFERENCE_SOURCE, atari_id, game_of, register
from asyncrl.atari.scores import aggregate, fmt_percent, iqm, normalized

#: the 57 games of the paper's Table 1 (Mnih et al. 2016, supplementary Table S3)
TABLE_1 = """alien amidar assault asterix asteroids atlantis bank_heist battle_zone beam_rider berzerk bowling
boxing breakout centipede chopper_command crazy_climber defender demon_attack double_dunk enduro
fishing_derby freeway frostbite gopher gravitar hero ice_hockey jamesbond kangaroo krull kung_fu_master
montezuma_revenge ms_pacman name_this_game phoenix pitfall pong private_eye qbert riverraid road_runner
robotank seaquest skiing solaris space_invaders star_gunner surround tennis time_pilot tutankham up_n_down
venture video_pinball wizard_of_wor yars_revenge zaxxon""".split()


def test_the_table_has_the_57_games_each_with_random_below_human():
    assert len(TABLE_1) == 57 and sorted(REFERENCE_SCORES) == sorted(TABLE_1)
    for game, (random, human) in REFERENCE_SCORES.items():
        assert random < human, game
    assert "DQN Zoo" in REFERENCE_SOURCE
    # spot checks against the source
    assert REFERENCE_SCORES["pong"] == (-20.7, 14.6) and REFERENCE_SCORES["skiing"] == (-17098.1, -4336.9)
    assert REFERENCE_SCORES["video_pinball"] == (16256.9, 17667.9)


def test_every_game_has_an_ale_py_id_and_rom():
    pytest.importorskip("ale_py")
    import os

    from ale_py.roms import get_rom_path

    assert register()
    for game in REFERENCE_SCORES:
        assert game_of(atari_id(game)) == game, atari_id(game)      # a registered id plays the game
        assert os.path.isfile(get_rom_path(game)), game


@pytest.mark.slow
def test_every_game_id_is_constructible_with_ale_py():
    """gym.make on all 57 ids: each loads its ROM and says what it shows (a reset with a seed
    would load the ROM a second time: twice the time for nothing more)."""
    pytest.importorskip("ale_py")
    import gymnasium as gym

    assert register()
    for game in REFERENCE_SCORES:
        env = gym.make(atari_id(game))
        assert env.observation_space.shape == (210, 160, 3), game
        env.close()


def test_normalised_scores_by_hand():
    out = normalized({"pong": 14.6, "breakout": 1.7, "boxing": 6.1})
    assert out["pong"] == 1.0 and out["breakout"] == 0.0
    assert out["boxing"] == pytest.approx((6.1 - 0.1) / 12.0)
    with pytest.raises(KeyError, match="no reference scores for 'tetris'"):
        normalized({"tetris": 1.0})


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5            # 3, 4, 5, 6
    assert iqm([10, 0, 1, 2, -5]) == 1.0                   # n = 5: one cut from each end: 0, 1, 2
    assert iqm([0, 0, 1, 1, 1, 1, 100, -100]) == 0.75      # the outliers are cut
    assert iqm([3.0]) == 3.0 and iqm([1, 2, 3]) == 2.0


def test_the_aggregates_and_their_intervals_on_made_up_scores():
    scores = [0.0, 0.5, 1.0, 2.0, 10.0]
    out = aggregate(scores, reps=4000, seed=1)
    assert out["mean"]["value"] == pytest.approx(13.5 / 5)
    assert out["median"]["value"] == 1.0
    assert out["iqm"]["value"] == pytest.approx(3.5 / 3)   # 0.5, 1.0, 2.0
    for name in ("mean", "median", "iqm"):
        assert out[name]["low"] <= out[name]["value"] <= out[name]["high"]
    # the mean's interval spans the resampled means: at least 0 (all 0.0) at most 10 (all 10.0)
    assert 0.0 <= out["mean"]["low"] < 1.5 and 4.0 < out["mean"]["high"] <= 10.0
    # the same games everywhere: no spread, the interval is the point
    same = aggregate([0.7] * 6, reps=200)
    assert all(same[n] == {"value": pytest.approx(0.7), "low": pytest.approx(0.7), "high": pytest.approx(0.7)}
               for n in same)


def test_two_games_interval_by_hand():
    """Games 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so
    the 95% percentile interval of many resamples is [0, 1]; a 40% interval is [0.5, 0.5]."""
    wide = aggregate([0.0, 1.0], reps=5000, seed=0)["mean"]
    assert (wide["value"], wide["low"], wide["high"]) == (0.5, 0.0, 1.0)
    narrow = aggregate([0.0, 1.0], reps=5000, level=0.4, seed=0)["mean"]
    assert (narrow["low"], narrow["high"]) == (0.5, 0.5)
    assert aggregate([1.0, 1.0], reps=10, seed=3) == aggregate([1.0, 1.0], reps=10, seed=3)


def test_aggregate_refuses_no_scores_or_non_finite_ones():
    with pytest.raises(ValueError, match="one finite score per game"):
        aggregate([])
    with pytest.raises(ValueError, match="one finite score per game"):
        aggregate([1.0, float("nan")])
    assert fmt_percent(1.234) == "123.4%" and fmt_percent(float("nan")) == "n/a"
