"""S3: moto's server on 127.0.0.1, in memory only, accepting any credentials."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from realservices.processes import (
    LOCALHOST,
    ServiceStartError,
    free_port,
    make_log_dir,
    spawn,
    stop_process,
    wait_ready,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["AWS_REGION", "DUMMY_AWS_CREDENTIALS", "S3Server", "start_s3"]

DUMMY_AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
AWS_REGION = "us-east-1"


@dataclass
class S3Server:
    """A running ``moto_server`` on 127.0.0.1. In memory only; accepts any credentials."""

    port: int
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path = field(repr=False)

    def client(self) -> S3Client:
        """A boto3 S3 client for this server: dummy credentials, region us-east-1, path style."""
        import boto3  # boto3 is slow to import: only the callers that need it pay for it
        from botocore.config import Config

        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=AWS_REGION,
            aws_access_key_id=DUMMY_AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )
        return client

    def reset(self) -> None:
        """Forget every bucket and object (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"moto reset answered HTTP {response.status}")

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL on timeout. Idempotent."""
        stop_process(self.process)


def _moto_ready(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_s3(port: int | None = None, *, timeout_s: float = 20) -> S3Server:
    """Start ``moto_server`` (from the running interpreter's bin directory) and wait until ready."""
    port = port or free_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    if not moto_server.exists():
        raise ServiceStartError(
            f"{moto_server} not found: install the dev dependencies (moto[server])"
        )
    endpoint_url = f"http://{LOCALHOST}:{port}"
    log_path = make_log_dir("moto-") / "moto.log"
    process = spawn(
        [str(moto_server), "-H", LOCALHOST, "-p", str(port)], port=port, log_path=log_path, env=None
    )
    wait_ready(
        f"moto_server on port {port}",
        process,
        log_path,
        lambda: _moto_ready(endpoint_url),
        timeout_s=timeout_s,
    )
    return S3Server(port=port, endpoint_url=endpoint_url, process=process, log_path=log_path)
