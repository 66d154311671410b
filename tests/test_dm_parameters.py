"""The parameter-count CLI: the demo config's DM, counted on the meta device."""

from __future__ import annotations

from workflow_scripts import dm_parameters


def test_demo_config_gives_the_documented_count(repo_root, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    dm_parameters.main(["--configfile", "config.yaml", "config.demo.yaml"])
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    counts = {part.strip(): int(count.replace(",", "")) for part, count in lines.items()}
    assert counts["total"] == 476_550  # docs/dm.md, "Parameter count"
    assert counts["total"] == sum(value for part, value in counts.items() if part != "total")
