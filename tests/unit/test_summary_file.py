"""`--summary PATH`: refused at start when it cannot be written, written like any output file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.errors import ConfigError, ExitCode
from supervisor.summary_file import check_summary_path, write_summary

REPO = Path(__file__).resolve().parents[2]


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory — give a file path"):
        check_summary_path(tmp_path)


def test_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"file is a file, not a folder"):
        check_summary_path(tmp_path / "file" / "deeper" / "summary.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="cannot write in"):
        check_summary_path(folder / "summary.json")


def test_a_missing_folder_is_created_at_exit(tmp_path: Path) -> None:
    target = check_summary_path(tmp_path / "a" / "b" / "summary.json")
    write_summary(target, {"total": {}})
    assert (tmp_path / "a" / "b" / "summary.json").read_text() == '{\n  "total": {}\n}\n'


def test_the_file_gets_the_umasks_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_summary(tmp_path / "summary.json", {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_summary(check_summary_path(link), {"n": 1})
    assert link.is_symlink()
    assert target.read_text() == '{\n  "n": 1\n}\n'


def test_a_special_file_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    write_summary(check_summary_path(fifo), {"n": 2})
    out, _ = reader.communicate(timeout=10)
    assert out == b'{\n  "n": 2\n}\n'
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_run_refuses_an_unusable_summary_path_before_anything_is_sent(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--dry-run", "--max-messages", "5",
         "--summary", str(tmp_path), "--config", str(REPO / "config.yaml")],
        capture_output=True, cwd=REPO, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == ExitCode.BAD_INPUT
    assert result.stdout == b""  # not one message
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == 1, errors
    assert json.loads(errors[0])["error"].endswith("is a directory — give a file path")
