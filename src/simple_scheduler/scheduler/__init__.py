"""The DAG scheduler: live jobs, dispatch to a free worker slot, the batched status
writer, the error policy and the task specs handed to execution.

Runs in the web process as asyncio code. May import `execution` (its interface only:
`execution.backend`), `store`, `workflow`, `states`, `errors`; never the hypervisor
package and never the C extension. Its public face for the API is `Scheduler`.
"""

from simple_scheduler.scheduler.core import Scheduler

__all__ = ["Scheduler"]
