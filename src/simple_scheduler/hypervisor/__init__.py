"""The hypervisor process: the single-threaded loop, its journal, the C-level fork
server and the monitors it forks.

Runs in its own process (`python -m simple_scheduler hypervisor`), started by the local
backend's launcher. The only importer of the C extension (`_core`). May import the wire
formats in `execution.protocol` and `execution.taskdir`; never the database, never
threads, never the web stack.
"""
