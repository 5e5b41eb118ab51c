"""asyncrl.bench: the steady-state rate read from a run's metrics.csv."""
import math

from asyncrl.bench import steady_rate


def _metrics(tmp_path, rows):
    path = tmp_path / "metrics.csv"
    path.write_text("step,wall_time,steps_per_s\n" + "".join(f"{s},{t},0\n" for s, t in rows))
    return str(path)


def test_steady_rate_is_steps_between_the_first_and_last_rows_over_their_time(tmp_path):
    """(9000 - 1000) / (5.0 - 1.0) = 2000 steps/s: start-up before the first row is left out."""
    rate, rows = steady_rate(_metrics(tmp_path, [(1000, 1.0), (5000, 3.0), (9000, 5.0)]))
    assert rate == 2000.0 and rows == 3


def test_steady_rate_needs_two_rows(tmp_path):
    rate, rows = steady_rate(_metrics(tmp_path, [(1000, 1.0)]))
    assert math.isnan(rate) and rows == 1
