"""Every runnable example of the README and docs/ runs as written and exits 0; where the page
marks the output it shows as checked (`<!-- output checked -->`, see `tests.docs_examples`), the
example prints exactly that.

`streaming-producer` is this checkout's program (a shim on PATH runs `python -m supervisor` with
this interpreter), the working directory the repository's root, as the docs say. The files an
example writes to /tmp go to a folder of the test's own instead (TMPDIR too, for `mktemp`), so
that runs side by side do not share them; the output names them as the page does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_examples import ROOT, Example, in_tmp, runnable_examples

EXAMPLES = runnable_examples()


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "streaming-producer"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m supervisor "$@"\n')
    script.chmod(0o755)
    return bin_dir


def root_files() -> set[str]:
    """The repository root's entries, but for the caches a linter run beside the tests makes."""
    return {name for name in os.listdir(ROOT) if not name.endswith("_cache")}


def run(example: Example, *, shim: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["TMPDIR"] = str(tmp)
    script = example.script.replace(".venv/bin/streaming-producer", "streaming-producer")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", in_tmp(script, tmp)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"{example.name}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.mark.skipif(shutil.which("jq") is None, reason="the examples use jq")
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_runs_as_written(example: Example, shim: Path, tmp_path: Path) -> None:
    before = root_files()
    for earlier in example.before:  # the page's earlier examples that write what this one reads
        run(earlier, shim=shim, tmp=tmp_path)
    done = run(example, shim=shim, tmp=tmp_path)
    assert done.stdout.strip(), example.name
    if example.output is not None:
        shown = done.stdout.replace(f"{tmp_path}/", "/tmp/")
        assert example.matches(shown), (
            f"{example.name}: the output differs from the page's\n"
            f"--- page\n{example.output}--- run\n{shown}"
        )
    assert root_files() == before, "an example left files in the repository's root"
