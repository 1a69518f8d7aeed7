"""People, roles, unit scopes, API-token scopes and the audit log (issue 10).

- roles.py     roles, what each may do, Principal (who acts) and Scope (which units)
- passwords.py argon2id hashing and the password policy
- users.py     add / list / disable / set password / authenticate with lockout
- sessions.py  console sessions (server-side rows; the cookie holds a secret)
- throttle.py  per-address rate limit on failed logins
- tokens.py    API tokens: admin tokens and read-only tokens scoped to a subtree
- audit.py     record every write with its author; list them for a scope
- auth.py      the API's bearer-token check and @require(permission) for views
- api.py       GET /api/v1/audit
- cli.py       kiemke-collector users add|list|disable|passwd, read-tokens
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register GET /api/v1/audit (api/openapi.py describes it)."""
    from kiemke.collector.accounts import api

    app.register_blueprint(api.bp)
