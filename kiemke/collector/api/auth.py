"""Bearer authentication of agents (<agent_id>.<secret>). API tokens (admin and
read-only, with their unit scope) are checked by kiemke.collector.accounts.auth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request

from kiemke.collector.api.errors import ApiError
from kiemke.collector.credentials import matches
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
    """An admin token only (everything, unscoped). For endpoints that do not check unit
    scopes yet: a read-only token is refused (403) rather than shown other units."""
    from kiemke.collector.accounts import auth
    from kiemke.collector.accounts.roles import API_TOKENS

    return auth.require(API_TOKENS)(view)
