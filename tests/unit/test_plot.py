"""asyncrl plot over seeds: grouping runs by configuration, labels from what differs, the
mean and its 95% interval (hand-computed), and the figure's lines and legend."""
from __future__ import annotations


import numpy as np
import pytest
import yaml

from asyncrl.curves import expand, group_runs, mean_and_interval, short_names
from asyncrl.errors import ConfigError
from asyncrl.plot import _read_run, draw, plot_runs

HEADER = "step,wall_time,worker,return,length\n"


def _run(folder, algo: str, seed: int, returns: list[float], lr: float = 1e-3, evals=None, losses=None):
    folder.mkdir(parents=True)
    cfg = {"preset": "classic", "algo": algo, "env": "CartPole-v1", "workers": 2, "lr": lr, "seed": seed,
           "run_dir": str(folder), "hidden": [64, 64], "provenance": {"host": f"h{seed}"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = "".join(f"{100 * (i + 1)},{0.5 * (i + 1)},0,{r},{int(r)}\n" for i, r in enumerate(returns))
    (folder / "episodes.csv").write_text(HEADER + rows)
    if evals is not None:
        (folder / "evaluations.csv").write_text(
            "step,wall_time,mean_return,std_return,min_return,max_return,mean_length,episodes,seconds\n"
            + "".join(f"{s},{s / 100},{r},0,{r},{r},{r},5,0.1\n" for s, r in evals))
    if losses is not None:
        (folder / "metrics.csv").write_text("step,wall_time,steps_per_s,updates,loss/policy,loss/value\n"
                                            + "".join(f"{s},{s / 100},100,{u},{lp},{lv}\n"
                                                      for s, u, lp, lv in losses))
    return folder


@pytest.fixture
def experiment(tmp_path):
    """Three seeds of a3c and three of a2c, each under its own folder as --seeds lays them out."""
    for algo, base in (("a3c", 10.0), ("a2c", 20.0)):
        for seed in range(3):
            _run(tmp_path / algo / f"seed-{seed}", algo, seed, [base + seed, base + 2 * seed, base + 3 * seed],
                 evals=[(150, base + seed)])
    return tmp_path


def test_mean_and_interval_by_hand():
    """Three curves on x = 0, 1, 2: at x = 1 the values are 1, 2, 6, mean 3. The bootstrap
    means of three values come in 27 equally likely draws; 1 (all three draws the 1) and 6
    have 1/27 = 3.7% each, more than the 2.5% tails, so the 95% interval is exactly [1, 6]."""
    x = np.array([0.0, 1.0, 2.0])
    agg = mean_and_interval([(x, np.array([0.0, 1.0, 2.0])), (x, np.array([0.0, 2.0, 4.0])),
                             (x, np.array([0.0, 6.0, 12.0]))], points=3)
    assert list(agg["x"]) == [0.0, 1.0, 2.0] and list(agg["n"]) == [3, 3, 3]
    assert agg["mean"][1] == pytest.approx(3.0)
    assert agg["low"][1] == 1.0 and agg["high"][1] == 6.0
    assert agg["low"][2] == 2.0 and agg["high"][2] == 12.0
    assert agg["low"][0] == agg["high"][0] == 0.0          # all three agree: no width


def test_a_run_ending_just_short_of_the_others_counts_to_the_end():
    """Runs end where their last episode ends: one that stops within 10% of the longest keeps
    its last value to the end, so the mean does not jump there."""
    agg = mean_and_interval([(np.array([0.0, 100.0]), np.array([0.0, 10.0])),
                             (np.array([0.0, 95.0]), np.array([0.0, 20.0]))], points=3)
    assert list(agg["n"]) == [2, 2, 2] and agg["mean"][2] == pytest.approx(15.0)


def test_a_curve_counts_only_where_it_has_data():
    """A shorter run stops counting at its last x: beyond it the mean is the longer run's alone
    and there is no interval (one curve)."""
    agg = mean_and_interval([(np.array([0.0, 10.0]), np.array([0.0, 10.0])),
                             (np.array([0.0, 5.0]), np.array([2.0, 2.0]))], points=3)
    assert list(agg["x"]) == [0.0, 5.0, 10.0] and list(agg["n"]) == [2, 2, 1]
    assert agg["mean"][1] == pytest.approx(3.5) and agg["mean"][2] == 10.0
    assert agg["low"][2] == agg["high"][2] == 10.0


def test_seed_folders_expand_in_numeric_order(tmp_path):
    for seed in (10, 2, 0):
        _run(tmp_path / "x" / f"seed-{seed}", "a3c", seed, [1.0])
    assert [p.rsplit("/", 1)[1] for p in expand(str(tmp_path / "x"))] == ["seed-0", "seed-2", "seed-10"]


def test_groups_by_configuration_labelled_by_what_differs(experiment):
    groups = group_runs([str(experiment / "a3c"), str(experiment / "a2c")])
    assert [label for label, _ in groups] == ["a3c", "a2c"]
    assert [len(runs) for _, runs in groups] == [3, 3]
    assert all("/a3c/" in r for r in groups[0][1])


def test_one_configuration_is_named_by_algo_and_env(experiment):
    [(label, runs)] = group_runs([str(experiment / "a3c")])
    assert label == "a3c on CartPole-v1" and len(runs) == 3


def test_groups_split_on_a_hyperparameter(tmp_path):
    _run(tmp_path / "a", "a3c", 0, [1.0], lr=1e-3)
    _run(tmp_path / "b", "a3c", 1, [1.0], lr=1e-3)
    _run(tmp_path / "c", "a3c", 0, [1.0], lr=3e-3)
    groups = group_runs([str(tmp_path / n) for n in "abc"])
    assert [(label, len(runs)) for label, runs in groups] == [("lr=0.001", 2), ("lr=0.003", 1)]


def test_a_field_a_run_lacks_counts_at_its_default(tmp_path):
    """A config.yaml without a field (recorded before it existed: gaussian_mean) groups with
    runs that set it to its default, and apart from those that set another value."""
    for name, seed, mean in (("old", 0, None), ("new", 1, "linear"), ("tanh", 2, "tanh")):
        folder = _run(tmp_path / name, "a3c", seed, [1.0])
        if mean is not None:
            cfg = yaml.safe_load((folder / "config.yaml").read_text())
            (folder / "config.yaml").write_text(yaml.safe_dump({**cfg, "gaussian_mean": mean}))
    groups = group_runs([str(tmp_path / n) for n in ("old", "new", "tanh")])
    assert [(label, len(runs)) for label, runs in groups] == [("gaussian_mean=linear", 2), ("gaussian_mean=tanh", 1)]


def test_group_by_run_and_explicit_labels(experiment):
    groups = group_runs([str(experiment / "a3c")], group="run")
    assert [label for label, _ in groups] == ["seed-0", "seed-1", "seed-2"]
    groups = group_runs([str(experiment / "a3c"), str(experiment / "a2c")], labels=["A3C", "A2C"])
    assert [(label, len(runs)) for label, runs in groups] == [("A3C", 3), ("A2C", 3)]
    with pytest.raises(ConfigError, match="1 label"):
        group_runs([str(experiment / "a3c"), str(experiment / "a2c")], labels=["A3C"])
    with pytest.raises(ConfigError, match="--group must be auto or run, got 'seed'"):
        group_runs([str(experiment / "a3c")], group="seed")


def test_short_names_tell_runs_apart():
    assert short_names(["/x/a3c/seed-0", "/x/a2c/seed-0"]) == ["a3c/seed-0", "a2c/seed-0"]
    assert short_names(["/x/a", "/x/b"]) == ["a", "b"]


def test_the_figure_draws_each_group_mean_with_its_interval(experiment):
    """Two groups of three seeds: each panel has one line per group whose y is the mean of the
    three runs' moving averages (window 2), a shaded interval each, and the legend names both."""
    groups = group_runs([str(experiment / "a3c"), str(experiment / "a2c")])
    data = {run: _read_run(run, 2) for _, runs in groups for run in runs}
    fig = draw(groups, data, ("train", "time", "eval"), 2)
    train, time_ax, eval_ax = fig.axes[:3]
    labels = [line.get_label() for line in train.get_lines()]
    assert labels == ["a3c (mean of 3, 95% interval)", "a2c (mean of 3, 95% interval)"]
    # a3c seed s returns 10+s, 10+2s, 10+3s at steps 100, 200, 300; its window-2 moving average at
    # step 300 is 10 + 2.5 s; the mean over s = 0, 1, 2 is 12.5
    line = train.get_lines()[0]
    assert line.get_xdata()[-1] == 300.0 and line.get_ydata()[-1] == pytest.approx(12.5)
    assert len(train.collections) == 2                       # the two shaded intervals
    assert time_ax.get_lines()[1].get_xdata()[-1] == 1.5     # wall time of the last episode
    # evaluations: one point per run at step 150, the a2c mean 20 + 1 = 21
    assert eval_ax.get_lines()[1].get_ydata()[0] == pytest.approx(21.0)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == labels
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_loss_panels_skip_rows_without_updates(tmp_path):
    run = _run(tmp_path / "r", "a3c", 0, [1.0, 2.0], losses=[(100, 0, "", ""), (200, 3, 0.5, 4.0)])
    groups = group_runs([str(run)])
    fig = draw(groups, {str(run): _read_run(str(run), 100)}, ("loss",), 100)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss/policy", "loss/value"]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [4.0]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_runs_writes_a_png_and_refuses_an_unknown_panel(experiment, tmp_path):
    out = tmp_path / "curves.png"
    plot_runs([str(experiment / "a3c"), str(experiment / "a2c")], str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="'reward' is not a panel; choose from train, time, eval, loss"):
        plot_runs([str(experiment / "a3c")], str(tmp_path / "x.png"), panels=("reward",))
    assert not (tmp_path / "x.png").exists()
