"""Console sessions: a 256-bit secret in an HttpOnly cookie, its SHA-256 in the database.

Each session has its own CSRF token (sent in every form). A session ends at logout, after
IDLE without a request, after MAX_AGE in any case, when its user is disabled or changes
password elsewhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from kiemke.collector.accounts.users import User, get_user
from kiemke.collector.credentials import hash_secret
from kiemke.collector.db.account_tables import console_sessions, users

IDLE = timedelta(hours=8)
MAX_AGE = timedelta(days=7)
# last_seen_at is written at most this often: a page view is a read, not a write.
TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class Session:
    id_hash: str
    user: User
    csrf_token: str
    needs_touch: bool = False


def create_session(conn: Connection, user: User, now: datetime) -> tuple[str, Session]:
    """(cookie value, session). Ends older sessions past their time on the way."""
    secret = secrets.token_urlsafe(32)
    id_hash = hash_secret(secret)
    csrf = secrets.token_urlsafe(32)
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
    conn.execute(console_sessions.insert().values(
        id_hash=id_hash, user_id=user.id, csrf_token=csrf, created_at=now, last_seen_at=now,
        expires_at=now + MAX_AGE))
    return secret, Session(id_hash, user, csrf)


def load_session(conn: Connection, secret: str, now: datetime) -> Session | None:
    """The live session for a cookie value, or None (unknown, idle, expired, disabled)."""
    if not secret or len(secret) > 128:
        return None
    id_hash = hash_secret(secret)
    row = conn.execute(select(console_sessions, users.c.disabled_at)
                       .join(users, users.c.id == console_sessions.c.user_id)
                       .where(console_sessions.c.id_hash == id_hash)).first()
    if row is None or row.disabled_at is not None or row.expires_at <= now \
            or row.last_seen_at + IDLE <= now:
        return None
    return Session(id_hash, get_user(conn, row.user_id), row.csrf_token,
                   needs_touch=now - row.last_seen_at >= TOUCH_EVERY)


def touch_session(conn: Connection, id_hash: str, now: datetime) -> None:
    """Keep an active session from going idle (a separate short write, rarely)."""
    conn.execute(update(console_sessions).where(console_sessions.c.id_hash == id_hash)
                 .values(last_seen_at=now))


def end_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))
