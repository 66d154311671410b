"""The episode log: what the expert stage writes reads back; a bad log is named; smoothing."""

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.experts.monitor import (
    SMOOTHING_MIN_EPISODES,
    SMOOTHING_WINDOW,
    monitor_header,
    monitor_row,
    read_monitor,
    read_monitor_header,
    recent_mean_return,
    smoothed_returns,
)


def test_written_log_reads_back(tmp_path):
    path = tmp_path / "monitor.csv"
    episodes = [{"r": 9.5, "l": 10, "t": 0.25}, {"r": 200.0, "l": 200, "t": 1.5}]
    path.write_text(
        monitor_header("CartPole-v1", "ppo", 3)
        + monitor_row(episodes[0], 10)
        + monitor_row(episodes[1], 400)
    )
    assert read_monitor_header(path) == {"env_id": "CartPole-v1", "algo": "ppo", "seed": 3}
    read = read_monitor(path)
    assert read["r"].tolist() == [9.5, 200.0] and read["timesteps"].tolist() == [10, 400]


def test_log_of_no_episodes_is_valid(tmp_path):
    path = tmp_path / "monitor.csv"
    path.write_text(monitor_header("CartPole-v1", "ppo", 0))
    episodes = read_monitor(path)
    assert len(episodes) == 0 and recent_mean_return(episodes["r"]) is None


def test_plain_monitor_log_gets_cumulative_timesteps(tmp_path):
    path = tmp_path / "monitor.csv"
    path.write_text('#{"t_start": 0}\nr,l,t\n5,10,2.0\n3,20,1.0\n')
    episodes = read_monitor(path)
    # Wall-time order first (the episode ending at t=1.0), then the running sum of lengths.
    assert episodes["r"].tolist() == [3, 5]
    assert episodes["timesteps"].tolist() == [20, 30]


GOOD = '#{"env_id": "x"}\nr,l,t,timesteps\n1.5,10,0.1,10\n2.5,20,0.2,30\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("r,l,t\n1,2,3\n", "not an SB3 Monitor log"),
        ("", "not an SB3 Monitor log"),
        ('#{"env_id": \nr,l,t\n1,2,3\n', "not '#' and a JSON object"),
        ("#{}\nr,l\n1,2\n", "lacks column"),
        (GOOD + "3.5,3", "line 5 is incomplete"),  # cut inside the last row
        (GOOD + "3.5,", "line 5 is incomplete"),
        (GOOD.replace("2.5,20", "2.5,2x"), "column 'l' holds values that are not numbers"),
        (GOOD + "1,2,3,4,5,6\n", "malformed Monitor log"),
    ],
)
def test_bad_monitor_log_is_a_clear_error_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "monitor.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as raised:
        read_monitor(path)
    assert str(path) in str(raised.value)


def test_missing_monitor_log_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere/monitor\.csv"):
        read_monitor(tmp_path / "nowhere" / "monitor.csv")


def test_smoothing_follows_the_papers_rule():
    assert (SMOOTHING_WINDOW, SMOOTHING_MIN_EPISODES) == (50, 500)
    assert smoothed_returns(pd.Series(np.arange(500.0))) is None  # up to 500: drawn raw
    returns = pd.Series(np.arange(501.0))
    smoothed = smoothed_returns(returns)
    # The mean of the last 50 episodes (fewer at the start).
    assert smoothed[0] == 0.0 and smoothed[9] == 4.5
    assert smoothed[500] == np.mean(np.arange(451.0, 501.0))
    assert recent_mean_return(returns) == smoothed[500]
