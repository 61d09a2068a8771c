"""`python -m supervisor` is the `streaming-producer` command."""

import sys

from supervisor.cli import main

sys.exit(main())
