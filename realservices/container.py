"""The project's container image, built with whichever engine this machine has.

The engine is `CONTAINER_ENGINE` when set, else `docker` or `podman` from PATH. On the development
machines and in CI there is no Docker engine, but `../shared/container/prepare.sh` (next to the
repository, run as root) installs podman and a stand-in `python:3.13-slim` base image
(``../shared/REAL-SERVICES.md``, "Containers"): `find_engine` runs it first when it is there.
`Unavailable` says why no engine can build here, for a test to skip with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREPARE = ROOT.parent / "shared" / "container" / "prepare.sh"
ENGINE_ENV = "CONTAINER_ENGINE"


class Unavailable(RuntimeError):
    """No container engine can build the image on this machine (the message says why)."""


@dataclass(frozen=True)
class Engine:
    """A docker-compatible CLI: `docker` or `podman`."""

    command: str

    @property
    def is_podman(self) -> bool:
        return Path(self.command).name.startswith("podman")

    def run(
        self, *args: str, timeout_s: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=check,
            stdin=subprocess.DEVNULL,
        )


@dataclass(frozen=True)
class Image:
    engine: Engine
    tag: str
    build_s: float
    size_bytes: int


def find_engine() -> Engine:
    """The engine to build with; raises `Unavailable` with the reason when there is none."""
    named = os.environ.get(ENGINE_ENV, "").strip()
    if not named and PREPARE.exists() and os.geteuid() == 0:
        result = subprocess.run(
            ["bash", str(PREPARE)],
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise Unavailable(f"{PREPARE} failed (exit {result.returncode}): {' | '.join(tail)}")
        named = "podman"
    candidates = [named] if named else ["docker", "podman"]
    reasons = []
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            reasons.append(f"no {name} on PATH")
            continue
        engine = Engine(path)
        info = engine.run("info", timeout_s=60, check=False)
        if info.returncode == 0:
            return engine
        reasons.append(f"`{name} info` failed: {(info.stderr or info.stdout).strip()[:200]}")
    raise Unavailable("no container engine can build here: " + "; ".join(reasons))


def build_image(engine: Engine, tag: str = "streaming-producer:test") -> Image:
    """Build the repository's Dockerfile as `tag` (docker format with podman, which keeps the
    HEALTHCHECK); raises `subprocess.CalledProcessError` when the build fails."""
    started = time.monotonic()
    fmt = ["--format", "docker"] if engine.is_podman else []
    engine.run("build", *fmt, "-t", tag, str(ROOT), timeout_s=900)
    build_s = time.monotonic() - started
    size = engine.run("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip()
    return Image(engine, tag, build_s, int(size))
