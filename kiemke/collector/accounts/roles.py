"""Roles, permissions, who is acting (Principal) and which units they may see (Scope).

Every role is scoped to a unit subtree (`unit_id` None: the whole organisation):
- viewer  reads the figures, machines, reports and ranking rows of its subtree;
- manager also grants and revokes waivers, makes enrolment tokens, revokes agents and
          moves machines between units of its subtree;
- admin   also manages units, people, API tokens and the asset register (in its subtree).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kiemke.collector.units import Unit, subtree_ids

ADMIN, MANAGER, VIEWER = "admin", "manager", "viewer"
ROLES = (ADMIN, MANAGER, VIEWER)

READ = "read"
WAIVERS = "waivers"
ENROLMENT = "enrolment"  # enrolment tokens and agents
MOVE_MACHINES = "machines.move"
UNITS = "units"
USERS = "users"
API_TOKENS = "api_tokens"
ASSETS = "assets"
AUDIT = "audit"

PERMISSIONS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({READ}),
    MANAGER: frozenset({READ, WAIVERS, ENROLMENT, MOVE_MACHINES, AUDIT}),
    ADMIN: frozenset({READ, WAIVERS, ENROLMENT, MOVE_MACHINES, AUDIT, UNITS, USERS,
                      API_TOKENS, ASSETS}),
}


class RoleError(ValueError):
    """An unknown role name."""


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}: use admin, manager (unit manager) or viewer")
    return role


@dataclass(frozen=True)
class Principal:
    """Who is acting: a console user, an API token, or the CLI on the server."""

    kind: str  # user | token | cli
    name: str
    role: str
    unit_id: int | None  # scope root; None = the whole organisation
    user_id: int | None = None
    token_id: int | None = None

    @property
    def label(self) -> str:
        """How the audit log and waivers name the author."""
        return {"user": self.name, "token": f"token:{self.name}",
                "cli": f"cli:{self.name}"}.get(self.kind, self.name)

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


@dataclass(frozen=True)
class Scope:
    """The units a principal may see: `ids` None means every unit."""

    root: Unit | None
    ids: frozenset[int] | None

    def contains(self, unit_id: int | None) -> bool:
        return self.ids is None or (unit_id is not None and unit_id in self.ids)

    @property
    def everything(self) -> bool:
        return self.ids is None


def scope_of(principal: Principal, units_: Iterable[Unit]) -> Scope:
    """The subtree of the principal's unit (all units for an unscoped principal).

    A scope unit that no longer exists gives an empty scope, never everything.
    """
    units_ = list(units_)
    if principal.unit_id is None:
        return Scope(None, None)
    root = next((u for u in units_ if u.id == principal.unit_id), None)
    if root is None:
        return Scope(None, frozenset())
    return Scope(root, frozenset(subtree_ids(units_, root.id)))


# Local CLI use on the server: whoever can run it can read the database anyway.
def cli_principal(user: str) -> Principal:
    return Principal("cli", user or "unknown", ADMIN, None)
