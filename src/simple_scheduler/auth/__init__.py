"""Who may do what: users (bcrypt), sessions (RS256 JWTs), the login throttle, the
server's key pair and credential files.

Runs in the web process and in the admin CLI. May import `store`, `config`; nothing
else of ours (never the scheduler, never execution).
"""
