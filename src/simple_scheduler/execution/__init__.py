"""The execution seam: `ExecutionBackend` and its event types, and the local backend
(the hypervisor's client, its launcher, and the readers of local task directories).

Runs in the web process. May import `config` and `states`; never the C extension and
never the `hypervisor` package (a test checks both stay out of `sys.modules`). The wire
formats shared with the hypervisor (`protocol`, `taskdir`) live here, and the
hypervisor imports them from here.
"""
