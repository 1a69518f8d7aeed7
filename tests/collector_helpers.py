"""Helpers for collector tests on the in-process app: units, tokens, agents, row counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import metadata
from kiemke.collector.enrollment import create_admin_token, create_enrollment_token
from kiemke.collector.units import add_unit

TABLES = ("units", "enrollment_tokens", "agents", "machines", "reports", "admin_tokens")


def row_counts(app: Flask) -> dict[str, int]:
    """Row count of every collector table: compared before/after to prove nothing changed."""
    with app.extensions["kiemke"].engine.connect() as conn:
        return {t: conn.execute(select(func.count()).select_from(metadata.tables[t])).scalar()
                for t in TABLES}


def add_units(app: Flask, *names: str) -> list[int]:
    """Add a chain of units, each the child of the previous; return their ids."""
    ids: list[int] = []
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        for name in names:
            ids.append(add_unit(conn, name, parent=ids[-1] if ids else None).id)
    return ids


def enrollment_token(app: Flask, unit_id: int, **kwargs: Any) -> str:
    if "expires_in" in kwargs and isinstance(kwargs["expires_in"], (int, float)):
        kwargs["expires_in"] = timedelta(seconds=kwargs["expires_in"])
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        return create_enrollment_token(conn, unit_id, **kwargs)[1]


def admin_token(app: Flask) -> str:
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        return create_admin_token(conn, "tests")[1]


def enroll_agent(client: Any, token: str, machine_id: str,
                 hostname: str = "PC-KETOAN-01") -> dict[str, str]:
    """Enrol over the API; return the Authorization header of the new credential."""
    resp = client.post("/api/v1/enroll", json={"token": token, "machine_id": machine_id,
                                               "hostname": hostname})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    return {"Authorization": f"Bearer {body['agent_id']}.{body['secret']}"}
