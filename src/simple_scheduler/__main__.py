"""Allow `python -m simple_scheduler`, which is how the server starts the hypervisor.

The hypervisor takes a short path that never imports the CLI stack (typer and what it
pulls in): it is a long-lived process whose memory should stay small.
"""

import sys

if sys.argv[1:2] == ["hypervisor"]:
    from simple_scheduler.hypervisor.main import main as hypervisor_main

    sys.exit(hypervisor_main(sys.argv[2:]))

from simple_scheduler.cli.main import main

main()
