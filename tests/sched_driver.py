"""A stand-in web process for crash tests: store + scheduler + hypervisor client, no HTTP.

usage: sched_driver.py DATABASE_URL SOCKET PROCESS_DIR WORKERS [WORKFLOW.xml]
Prints "job <id>" after submitting, then runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


async def main() -> None:
    from simple_scheduler.server import local_scheduler
    from simple_scheduler.store.db import Store
    from simple_scheduler.store.migrate import migrate
    from simple_scheduler.workflow import parse_workflow

    url, sock, pdir, workers = sys.argv[1:5]
    store = await Store.open(url)
    await migrate(store)

    scheduler = local_scheduler(
        store,
        sock,
        process_directory=Path(pdir),
        nb_of_workers=int(workers),
        kill_grace=1.0,
        base_env=dict(os.environ),
    )
    await scheduler.start()
    if len(sys.argv) > 5:
        xml = Path(sys.argv[5]).read_bytes()
        job_id = await scheduler.submit(parse_workflow(xml), "alice", xml.decode())
        print(f"job {job_id}", flush=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
