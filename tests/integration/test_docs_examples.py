"""Every runnable example of the README and docs/ runs as written and exits 0.

`streaming-producer` is this checkout's program (a shim on PATH runs `python -m supervisor` with
this interpreter), the working directory the repository's root, as the docs say.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_examples import ROOT, Example, runnable_examples

EXAMPLES = runnable_examples()


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "streaming-producer"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m supervisor "$@"\n')
    script.chmod(0o755)
    return bin_dir


@pytest.mark.skipif(shutil.which("jq") is None, reason="the examples use jq")
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_runs_as_written(example: Example, shim: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    script = example.script.replace(".venv/bin/streaming-producer", "streaming-producer")
    before = set(os.listdir(ROOT))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"{example.name}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert done.stdout.strip(), example.name
    assert set(os.listdir(ROOT)) == before, "an example left files in the repository's root"
