-- A listing of jobs reads the page's rows and one counter, nothing that grows with the
-- number of jobs kept (issue 14's soak: `jobsinfo?limit=20` cost 13 `info` reads).

-- How many jobs each owner has, kept in the transactions that insert and delete jobs:
-- a listing's total (RestPage `size`) was a COUNT(*) over every job ever kept.
CREATE TABLE job_counts (
    owner  VARCHAR(255) PRIMARY KEY,
    jobs   BIGINT NOT NULL
);
INSERT INTO job_counts (owner, jobs) SELECT owner, COUNT(*) FROM jobs GROUP BY owner;

-- What JobInfoData shows beyond the row's columns (precious tasks, the declared details
-- of the job's variables), as JSON written at submission: a listed job used to cost a
-- read of its tasks and of its XML. NULL for jobs submitted before: read as before.
ALTER TABLE jobs ADD COLUMN details TEXT;
