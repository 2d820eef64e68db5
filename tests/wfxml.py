"""Build ProActive job-descriptor XML for tests, so each test states its graph in a few lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

NS = "urn:proactive:jobdescriptor:3.14"


def _script(tag: str, code: str) -> str:
    return f'<{tag}><script><code language="bash"><![CDATA[{code}]]></code></script></{tag}>'


def task_xml(spec: Mapping[str, Any]) -> str:
    attrs = {"name": spec["name"]}
    for key, attr in (
        ("on_error", "onTaskError"),
        ("max_exec", "maxNumberOfExecution"),
        ("walltime", "walltime"),
        ("retry_delay", "taskRetryDelay"),
    ):
        if key in spec:
            attrs[attr] = str(spec[key])
    parts = []
    if spec.get("depends"):
        refs = "".join(f"<task ref={quoteattr(d)}/>" for d in spec["depends"])
        parts.append(f"<depends>{refs}</depends>")
    if "pre" in spec:
        parts.append(_script("pre", spec["pre"]))
    if "native" in spec:
        argv = spec["native"]
        args = "".join(f"<argument value={quoteattr(a)}/>" for a in argv[1:])
        parts.append(
            f"<nativeExecutable><staticCommand value={quoteattr(argv[0])}>"
            f"<arguments>{args}</arguments></staticCommand></nativeExecutable>"
        )
    else:
        parts.append(
            '<scriptExecutable><script><code language="bash"><![CDATA['
            + spec.get("bash", "true")
            + "]]></code></script></scriptExecutable>"
        )
    if "post" in spec:
        parts.append(_script("post", spec["post"]))
    if "cleaning" in spec:
        parts.append(_script("cleaning", spec["cleaning"]))
    attr_text = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    return f"<task {attr_text}>{''.join(parts)}</task>"


def job_xml(
    tasks: Sequence[Mapping[str, Any]],
    *,
    name: str = "test-job",
    on_error: str | None = None,
    max_exec: int | None = None,
    retry_delay: str | None = None,
    priority: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> bytes:
    attrs = {"xmlns": NS, "name": name}
    if on_error:
        attrs["onTaskError"] = on_error
    if max_exec is not None:
        attrs["maxNumberOfExecution"] = str(max_exec)
    if retry_delay:
        attrs["taskRetryDelay"] = retry_delay
    if priority:
        attrs["priority"] = priority
    attr_text = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    var_xml = ""
    if variables:
        var_xml = (
            "<variables>"
            + "".join(
                f"<variable name={quoteattr(k)} value={quoteattr(v)}/>"
                for k, v in variables.items()
            )
            + "</variables>"
        )
    body = "".join(task_xml(t) for t in tasks)
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    return f"{head}<job {attr_text}>{var_xml}<taskFlow>{body}</taskFlow></job>".encode()
