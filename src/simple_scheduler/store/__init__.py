"""The database: one `Store` over `databases` (SQLite by default), the SQL for jobs and
tasks, the migrations runner and the in-thread primary-key reads.

Runs in the web process and in the admin CLI, never in the hypervisor (which never
opens the database). May import `config`, `states` and `workflow` (the job model it
stores); nothing else of ours.
"""
