"""Allow `python -m simple_scheduler`, which is how the server starts the hypervisor."""

from simple_scheduler.cli import main

main()
