"""Bearer authentication: agents (<agent_id>.<secret>) and admin tokens."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, request

from kiemke.collector.api.errors import ApiError
from kiemke.collector.credentials import matches
from kiemke.collector.enrollment import admin_token_valid
from kiemke.collector.ingest import AgentCredential, load_agent


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_credentials", "Authorization",
                       "send the credential as 'Authorization: Bearer <token>'")
    return token.strip()


def authenticate_agent() -> AgentCredential:
    token = bearer_token()
    agent_id, dot, secret = token.partition(".")
    wrong = ApiError(401, "invalid_credentials", "Authorization",
                     "the agent credential is wrong; enrol the agent again "
                     "(kiemke-agent enroll) with a new enrolment token")
    if not dot or not agent_id or not secret or len(agent_id) > 32:
        raise wrong
    agent = load_agent(current_app.extensions["kiemke"].engine, agent_id)
    if agent is None or not matches(secret, agent.secret_hash):
        raise wrong
    if agent.revoked:
        raise ApiError(401, "credentials_revoked", "Authorization",
                       "this agent's credential was revoked (re-enrolled elsewhere or by an "
                       "administrator); enrol the agent again with a new enrolment token")
    return agent


def require_admin(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        with current_app.extensions["kiemke"].engine.connect() as conn:
            ok = admin_token_valid(conn, token)
        if not ok:
            raise ApiError(401, "invalid_credentials", "Authorization",
                           "this admin token is not valid or was revoked; create one with "
                           "`kiemke-collector admin-tokens create NAME`")
        return view(*args, **kwargs)

    return wrapper
