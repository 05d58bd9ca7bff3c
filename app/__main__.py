"""Command line of the movie app: ``python -m app roles grant|revoke|list``.

The database is the app's own (``MOVIES_DB``, else ``movies.sqlite3`` in the
Flask instance folder), as the running app finds it::

    python -m app roles grant alice@example.org editor
    python -m app roles revoke alice@example.org editor
    python -m app roles list [USER]

A change reaches a signed-in user within ``roles_ttl`` seconds (60) when the
front end protects the whole site, and at their next login when only the login
path is protected.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from contextlib import closing

from . import create_app
from .db import all_roles, connect, grant_role, revoke_role, roles_of
from .roles import APP_ROLES, valid_role, valid_user

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status: 0 done, 1 nothing to revoke, 2 bad arguments."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        user = None if arguments.user is None else valid_user(arguments.user)
        role = valid_role(arguments.role) if arguments.command != "list" else ""
    except ValueError as exc:
        parser.error(str(exc))
    with closing(connect(create_app().config["DATABASE"])) as db:
        if user is None:
            _print(all_roles(db))
            return 0
        if arguments.command == "list":
            _print({user: roles_of(db, user)})
            return 0
        if arguments.command == "grant":
            if role not in APP_ROLES:
                print(f"note: the movie app only checks the roles {', '.join(APP_ROLES)}", file=sys.stderr)
            added = grant_role(db, user, role, by=f"cli:{getpass.getuser()}")
            print(f"granted {role} to {user}" if added else f"{user} already has {role}")
            return 0
        if revoke_role(db, user, role):
            print(f"revoked {role} from {user}")
            return 0
        print(f"{user} does not have {role}", file=sys.stderr)
        return 1


def _print(holders: dict[str, list[str]]) -> None:
    # One line per user: the user id, a tab, the roles joined with commas.
    for holder, roles in holders.items():
        print(f"{holder}\t{','.join(roles)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="The movie app's administration.")
    topics = parser.add_subparsers(dest="topic", required=True)
    roles = topics.add_parser("roles", help="the app's own roles (editor, admin)")
    commands = roles.add_subparsers(dest="command", required=True)
    for name, help_text in (("grant", "give USER the ROLE"), ("revoke", "take the ROLE from USER")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("user", metavar="USER", help="the user id, as /api/me shows it")
        command.add_argument("role", metavar="ROLE", help=f"a role name ({', '.join(APP_ROLES)})")
    listing = commands.add_parser("list", help="every user holding a role, or USER's roles")
    listing.add_argument("user", metavar="USER", nargs="?", help="only this user")
    return parser


if __name__ == "__main__":
    sys.exit(main())
