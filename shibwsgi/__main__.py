"""``shibwsgi COMMAND`` (or ``python -m shibwsgi COMMAND``): operator commands (``doctor``)."""

from __future__ import annotations

import sys

COMMANDS = ("doctor",)


def main(argv: list[str] | None = None) -> int:
    """Run a command; ``argv`` defaults to the command line (the console script's entry point)."""
    if argv is None:
        argv = sys.argv[1:]
    if not argv or argv[0] not in COMMANDS:
        print(
            f"usage: shibwsgi {{{','.join(COMMANDS)}}} [options]  (--help after the command)",
            file=sys.stderr,
        )
        return 2
    from .doctor import main as doctor

    return doctor(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
