"""`python -m taskmesh_localrun`: the whole suite (or one part of it) on this machine."""

from __future__ import annotations

import asyncio
import os
import sys

from taskmesh_localrun.console import Console
from taskmesh_localrun.options import parse_options
from taskmesh_localrun.runner import Runner


def main() -> None:
    """Parse the command line, run, and exit with the run's status."""
    options = parse_options()
    sys.exit(asyncio.run(Runner(options, os.environ, Console()).run()))


if __name__ == "__main__":
    main()
