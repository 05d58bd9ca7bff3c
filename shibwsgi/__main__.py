"""``shibwsgi COMMAND`` (or ``python -m shibwsgi COMMAND``): operator commands (``doctor``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"doctor": "check a deployment's configs and settings, or probe it live (--probe URL)"}
USAGE = "usage: shibwsgi {" + ",".join(COMMANDS) + "} [options]  (--help after the command)"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``shibwsgi`` console script; ``argv`` defaults to the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        print("\ncommands:")
        for name, what in COMMANDS.items():
            print(f"  {name:10} {what}")
        return 0
    if not args or args[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    from .doctor import main as doctor

    return doctor(args[1:])


if __name__ == "__main__":
    sys.exit(main())
