"""Secrets: 256-bit random values stored as SHA-256 hashes, compared in constant time.

They are not passwords (nobody chooses them), so a slow KDF adds nothing against
brute force and would cost milliseconds on every report (docs/design.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
import uuid


def new_secret() -> str:
    """43 URL-safe characters (no '.'), 256 bits of entropy, never beginning with '-'.

    One URL-safe token in 64 would begin with '-', and a command line such as
    `kiemke-agent enroll --token -Xy...` then reads it as an option. Drawing again costs
    a few bits of the first character only (about 0.02 of 256 bits).
    """
    while True:
        secret = _secrets.token_urlsafe(32)
        if not secret.startswith("-"):
            return secret


def new_agent_id() -> str:
    return uuid.uuid4().hex


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
