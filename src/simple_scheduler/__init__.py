"""simple-scheduler: a job hypervisor for Linux with a ProActive-compatible REST API."""

__version__ = "0.1.0"
