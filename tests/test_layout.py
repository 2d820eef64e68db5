"""The process roles hold in the code: the web process never loads the C extension or
the hypervisor package, the workflow parser imports nothing else of ours, and the
command line starts without the database stack."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(imports: str, package: str = "simple_scheduler") -> list[str]:
    """The modules of `package` a fresh interpreter holds after `imports`."""
    code = (
        f"{imports}\n"
        "import json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == {package!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(out.stdout))


def test_web_process_never_loads_the_extension_or_the_hypervisor() -> None:
    loaded = _modules_after(
        "import simple_scheduler.server, simple_scheduler.api, simple_scheduler.scheduler\n"
        "import simple_scheduler.execution.local, simple_scheduler.store.jobstore\n"
        "from simple_scheduler.api import create_app"
    )
    assert "simple_scheduler.api.app" in loaded  # the import really happened
    assert "simple_scheduler.execution.client" in loaded
    assert not [m for m in loaded if m.endswith("_core") or ".hypervisor" in m], loaded


def test_hypervisor_never_loads_the_web_stack() -> None:
    loaded = _modules_after("import simple_scheduler.hypervisor.main")
    assert "simple_scheduler.hypervisor._core" in loaded
    forbidden = (".api", ".store", ".scheduler", ".auth", ".server", ".cli")
    assert not [m for m in loaded if m.startswith(tuple("simple_scheduler" + f for f in forbidden))]


def test_workflow_is_pure() -> None:
    loaded = _modules_after("import simple_scheduler.workflow")
    assert {m.split(".")[1] for m in loaded if m.count(".") >= 1} == {"workflow"}


def test_command_line_start_leaves_the_database_stack_unloaded() -> None:
    """Every CLI verb (`submit`, `watch`, ...) starts through `cli.main`; only the admin
    commands that open the database may pay for loading it (~0.2 s)."""
    loaded = _modules_after("import simple_scheduler.cli.main")
    assert "simple_scheduler.cli.admin" in loaded  # the admin commands are registered
    assert not [m for m in loaded if m.startswith("simple_scheduler.store")], loaded


def test_command_line_start_leaves_the_websocket_client_unloaded() -> None:
    """`websockets` (~30 ms) is loaded when a verb follows a job's events, not at start."""
    assert _modules_after("import simple_scheduler.cli.main", "websockets") == []
