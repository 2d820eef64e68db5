"""The declared details of a job's variables (model, description, group, advanced,
hidden), read back from a stored job descriptor for ProActive's `detailedVariables`.

Pure and cheap: job variables come before `taskFlow` (the schema's order), so reading
stops there, whatever the size of the document. The document was validated at submit.
"""

from __future__ import annotations

import io
from typing import Any

from lxml import etree

from simple_scheduler.workflow.model import Job
from simple_scheduler.workflow.xml import parser_options

_FLAGS = ("advanced", "hidden")
_TEXTS = ("model", "description", "group")


def variable_details(document: bytes) -> dict[str, dict[str, Any]]:
    """Job variable name -> the declared `model`, `description`, `group` (text, None when
    absent) and `advanced`, `hidden` (booleans)."""
    out: dict[str, dict[str, Any]] = {}
    depth = 0
    options = parser_options()
    try:
        for event, element in etree.iterparse(
            io.BytesIO(document), events=("start", "end"), **options
        ):
            local = etree.QName(element).localname
            if event == "start":
                depth += 1
                if local == "taskFlow":
                    break
                continue
            depth -= 1
            # job (depth 1) > variables (2) > variable (3): its end leaves depth 2
            if local == "variable" and depth == 2:
                name = element.get("name")
                if name:
                    details: dict[str, Any] = {k: element.get(k) for k in _TEXTS}
                    for flag in _FLAGS:
                        details[flag] = (element.get(flag) or "").strip().lower() == "true"
                    out[name] = details
    except etree.XMLSyntaxError:
        return out
    return out


def job_details(job: Job, document: bytes) -> dict[str, Any]:
    """What ProActive's JobInfoData shows that a job's columns do not hold, as stored
    with the job (JSON): the tasks with `preciousResult`, the variables' declared details."""
    return {
        "precious_tasks": [t.name for t in job.tasks if t.precious_result],
        "variables": variable_details(document),
    }
