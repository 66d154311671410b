"""The build_index stage CLI: writes the index atomically, exits 1 naming a bad input."""

from __future__ import annotations

import h5py

from workflow_scripts.build_index import main


def test_cli_writes_the_index(cartpole_dataset, tmp_path, capsys):
    output = tmp_path / "retrieval" / "CartPole-v1.h5"
    assert main(["--dataset", str(cartpole_dataset), "--output", str(output)]) == 0
    assert "CartPole-v1: 2000 distinct observations of 2000 transitions" in capsys.readouterr().out
    with h5py.File(output) as handle:
        assert handle.attrs["complete"] and handle.attrs["dataset"] == str(cartpole_dataset)
    assert sorted(p.name for p in output.parent.iterdir()) == ["CartPole-v1.h5"]


def test_cli_refuses_a_bad_input_naming_it(cartpole_dataset, tmp_path, capsys):
    output = tmp_path / "retrieval" / "CartPole-v1.h5"
    code = main(["--dataset", str(cartpole_dataset), "--output", str(output), "--env", "Taxi-v3"])
    assert code == 1
    assert f"{cartpole_dataset}: holds env 'CartPole-v1', expected 'Taxi-v3'" in (
        capsys.readouterr().err
    )
    missing = tmp_path / "CartPole-v1.h5"
    assert main(["--dataset", str(missing), "--output", str(output)]) == 1
    assert f"{missing}: file does not exist" in capsys.readouterr().err
    assert not output.parent.exists() or not any(output.parent.iterdir())
