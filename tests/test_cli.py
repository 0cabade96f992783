"""The command line: a few lines ending with the status, the one-line error and the report path; exit codes
0 / 1 / 2; an unknown target named in one line with the known ones; ``--version``, ``--config``, help on every
flag; the installed ``maintenance-pipeline`` command."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from targets import write_config
from maintenance_pipeline import cli


def test_a_failed_run_on_a_missing_file_is_a_few_lines_with_the_error_and_the_report(demo_dir, home, capsys):
    path = write_config(demo_dir, {"goals": {"url": "sqlite:///data/missing.db",
                                             "reference": {"url": "sqlite:///data/goals_dev.db"}}})
    assert cli.main(["--config", str(path), "run", "maintain_database", "goals"]) == 1
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) <= 5, lines
    assert lines[0].startswith("maintain_database goals: failed at backup")
    assert any(x.startswith("error: ") and "missing.db" in x and len(x) <= 300 for x in lines)
    report = next(x for x in lines if x.startswith("report: "))[len("report: "):]
    assert Path(report).is_file()
    assert "DEBUG" not in out.err and "Traceback" not in out.out + out.err  # the event log stays in Dagster


def test_success_is_two_lines_and_verbose_shows_the_event_log(demo_dir, home, capsys):
    path = write_config(demo_dir)
    assert cli.main(["--config", str(path), "run", "verify_database", "goals", "--align", "none"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --align applies to maintain_database only (verify_database "
                                               "changes no schema); drop it or run maintain_database")
    assert cli.main(["--config", str(path), "run", "verify_database", "goals"]) in (0, 1)
    quiet = capsys.readouterr()
    assert "STEP_SUCCESS" not in quiet.out + quiet.err
    code = cli.main(["--config", str(path), "run", "maintain_database", "goals"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0, lines
    assert lines[0].startswith("maintain_database goals: success") and lines[1].startswith("report: ")
    cli.main(["--config", str(path), "run", "verify_database", "goals", "--verbose"])
    verbose = capsys.readouterr()
    assert "STEP_SUCCESS" in verbose.out + verbose.err


def test_an_unknown_target_is_one_line_naming_the_known_ones(demo_dir, home, capsys):
    path = write_config(demo_dir)
    assert cli.main(["--config", str(path), "run", "maintain_database", "gaols"]) == 2
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [f"error: unknown target 'gaols'; {path} defines: goals"]


def test_version_help_and_the_installed_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("maintenance-pipeline ")

    def actions(parser: argparse.ArgumentParser):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for p in a.choices.values():
                    yield from actions(p)
            else:
                yield parser.prog, a

    missing = [f"{prog} {a.dest}" for prog, a in actions(cli._parser()) if not a.help]
    assert missing == []
    exe = shutil.which("maintenance-pipeline", path=str(Path(sys.executable).parent))
    assert exe, "the package installs a maintenance-pipeline command"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "exit codes: 0 success; 1" in out.stdout


def test_a_missing_or_unset_dagster_home_is_one_line_with_the_fix(demo_dir, monkeypatch, capsys):
    path = write_config(demo_dir)
    missing = demo_dir / "no_such_home"
    monkeypatch.setenv("DAGSTER_HOME", str(missing))
    assert cli.main(["--config", str(path), "run", "verify_database", "goals"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: DAGSTER_HOME {missing} is not a directory; create it (mkdir -p {missing}) or point DAGSTER_HOME "
        "at the Dagster instance the UI uses"]
    monkeypatch.delenv("DAGSTER_HOME")
    assert cli.main(["--config", str(path), "run", "verify_database", "goals"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: DAGSTER_HOME is not set") and "export DAGSTER_HOME" in err[0]
    assert not missing.exists() and not (demo_dir / "backups").exists()  # nothing ran
