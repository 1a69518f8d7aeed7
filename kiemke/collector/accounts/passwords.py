"""Passwords: argon2id (memory-hard) through argon2-cffi, and the policy for new ones."""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4): about
# 50-100 ms per login on a 2-core server. The cost is deliberate (docs/console.md).
HASHER = PasswordHasher()
MIN_LENGTH = 10
MAX_LENGTH = 256
# Verified for unknown names too, so a login takes as long whether the name exists or not.
_DUMMY_HASH = HASHER.hash("kiemke-no-such-user-placeholder")


class PasswordPolicyError(ValueError):
    """A new password that is refused; the message says why."""


def normalise(password: str) -> str:
    # Typed on different keyboards, Vietnamese text arrives as NFC or NFD: same password.
    return unicodedata.normalize("NFC", password)


def check_policy(password: str, *, name: str = "") -> str:
    password = normalise(password)
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"the password is limited to {MAX_LENGTH} characters")
    if name and password.casefold() == name.casefold():
        raise PasswordPolicyError("the password must not be the login name")
    return password


def hash_password(password: str) -> str:
    return HASHER.hash(normalise(password))


def verify(stored_hash: str | None, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, normalise(password)) \
            and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)
