"""`python -m supervisor` and the `streaming-producer` command.

Signals are taken in hand before anything else is imported: the package's imports (pydantic,
confluent-kafka, boto3...) take most of a second, and a Ctrl-C or SIGHUP meanwhile would otherwise
end the process with a traceback, or kill it outright.
"""

from __future__ import annotations

import sys

from supervisor.signals import EarlySignals, reserve_standard_fds


def main() -> int:
    early = EarlySignals.install()
    reserve_standard_fds()
    from supervisor.cli import main as cli_main

    return cli_main(early=early)


if __name__ == "__main__":
    sys.exit(main())
