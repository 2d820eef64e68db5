"""Exit codes of the client verbs, and the one exception that carries them.

Scripts and CI jobs branch on these, so they are few and stable: every failure the client
detects becomes a `ClientError` with one of them, and only the command wrapper turns it
into a message on stderr and a process exit.
"""

from __future__ import annotations

#: The job ended FINISHED with no failed or faulty task; any other verb succeeded.
OK = 0
#: The job ended otherwise (killed, failed, a task failed or faulty, removed meanwhile),
#: or the server refused the action in the job's current state.
JOB_FAILED = 1
#: Bad usage or input: unknown option, unreadable or invalid workflow, unknown job or task.
USAGE = 2
#: The server is unreachable or failing, or there is no valid session (log in again).
NO_SERVER = 3
#: Interrupted (Ctrl-C): the job itself goes on.
INTERRUPTED = 130
#: Stdout was closed early (`| head`): what a shell reports for a SIGPIPE death.
PIPE_CLOSED = 141

EXIT_CODES_HELP = (
    "Exit codes: 0 the job FINISHED with no failed or faulty task (other verbs: success);"
    " 1 the job ended otherwise, or the action is not allowed in the job's state;"
    " 2 usage or input error (bad option, invalid workflow, unknown job or task);"
    " 3 server unreachable or not logged in (session expired: log in again)."
)


class ClientError(Exception):
    """A failure to report in one line and exit with `code`; `status` is the HTTP status
    when the server answered."""

    def __init__(self, code: int, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
