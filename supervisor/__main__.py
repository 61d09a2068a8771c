"""`python -m supervisor` and the `streaming-producer` command.

Signals are taken in hand before anything else is imported: the package's imports (pydantic,
confluent-kafka, boto3...) take most of a second, and a Ctrl-C or SIGHUP meanwhile would otherwise
end the process with a traceback, or kill it outright.
"""

from __future__ import annotations

import contextlib
import os
import sys

from supervisor.signals import EarlySignals, reserve_standard_fds


def main() -> int:
    early = EarlySignals.install()
    reserve_standard_fds()
    from supervisor.cli import main as cli_main
    from supervisor.lifecycle import blocking_work_left

    code = cli_main(early=early)
    if blocking_work_left():  # a load a stop left behind: nothing to wait for, leave at once
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
