-- simple-scheduler schema, version 1.
-- Portable SQL (SQLite and PostgreSQL): no AUTOINCREMENT, ids come from id_sequences;
-- times are epoch milliseconds (ProActive's convention, -1 or NULL = not set);
-- JSON documents are stored as TEXT.

CREATE TABLE id_sequences (
    name        VARCHAR(64) PRIMARY KEY,
    next_value  BIGINT NOT NULL
);
INSERT INTO id_sequences (name, next_value) VALUES ('jobs', 1);
INSERT INTO id_sequences (name, next_value) VALUES ('users', 1);

CREATE TABLE users (
    id             BIGINT PRIMARY KEY,
    name           VARCHAR(255) NOT NULL UNIQUE,
    password_hash  VARCHAR(255) NOT NULL,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL
);

-- A logged-out JWT stays here until it would have expired anyway.
CREATE TABLE revoked_tokens (
    jti         VARCHAR(64) PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE jobs (
    id                       BIGINT PRIMARY KEY,
    owner                    VARCHAR(255) NOT NULL,
    name                     VARCHAR(1024) NOT NULL,
    priority                 VARCHAR(16) NOT NULL,
    status                   VARCHAR(32) NOT NULL,
    on_task_error            VARCHAR(32) NOT NULL,
    max_number_of_execution  INTEGER NOT NULL,
    project_name             TEXT,
    description              TEXT,
    variables                TEXT NOT NULL,   -- JSON object, declared order kept
    generic_information      TEXT NOT NULL,   -- JSON object
    xml                      TEXT NOT NULL,   -- the submitted workflow, verbatim
    submitted_time           BIGINT NOT NULL,
    start_time               BIGINT,
    finished_time            BIGINT,
    in_error_time            BIGINT,
    total_tasks              INTEGER NOT NULL,
    pending_tasks            INTEGER NOT NULL,
    running_tasks            INTEGER NOT NULL,
    finished_tasks           INTEGER NOT NULL,
    faulty_tasks             INTEGER NOT NULL,
    failed_tasks             INTEGER NOT NULL,
    in_error_tasks           INTEGER NOT NULL
);
CREATE INDEX jobs_owner ON jobs (owner, id);
CREATE INDEX jobs_status ON jobs (status);

CREATE TABLE tasks (
    job_id                   BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task_index               INTEGER NOT NULL,
    name                     VARCHAR(1024) NOT NULL,
    status                   VARCHAR(32) NOT NULL,
    spec                     TEXT NOT NULL,   -- JSON: what to run (argv/script, env, pre/post/cleaning, walltime, ...)
    on_task_error            VARCHAR(32) NOT NULL,
    max_number_of_execution  INTEGER NOT NULL,
    attempts                 INTEGER NOT NULL DEFAULT 0,  -- executions started so far
    exit_code                INTEGER,
    signal                   INTEGER,
    reason                   TEXT,
    scheduled_time           BIGINT,
    start_time               BIGINT,
    finished_time            BIGINT,
    in_error_time            BIGINT,
    pid                      INTEGER,
    pid_start_time           BIGINT,
    PRIMARY KEY (job_id, task_index)
);
CREATE UNIQUE INDEX tasks_name ON tasks (job_id, name);
CREATE INDEX tasks_status ON tasks (status);

CREATE TABLE dependencies (
    job_id      BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task_index  INTEGER NOT NULL,
    parent      INTEGER NOT NULL,
    PRIMARY KEY (job_id, task_index, parent)
);
