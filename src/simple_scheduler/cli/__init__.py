"""The `simple-scheduler` command line: run-server, hypervisor, administration.

Runs in the user's shell. The server and hypervisor commands import their packages
lazily, so `simple-scheduler --help` loads neither.
"""

from simple_scheduler.cli.main import main

__all__ = ["main"]
