"""Rate limit on failed logins per client address (the lockout per user is in users.py).

Counted in the database, so every worker and instance sees the same count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select

from kiemke.collector.db.account_tables import login_failures

WINDOW = timedelta(minutes=15)
MAX_FAILURES = 20  # per address and window: enough for an office behind one NAT address


def blocked(conn: Connection, address: str, now: datetime) -> bool:
    n = conn.execute(select(func.count()).select_from(login_failures).where(
        login_failures.c.key == f"ip:{address}", login_failures.c.at > now - WINDOW)
    ).scalar_one()
    return n >= MAX_FAILURES


def note_failure(conn: Connection, address: str, now: datetime) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.at <= now - WINDOW))
    conn.execute(login_failures.insert().values(key=f"ip:{address}"[:255], at=now))
