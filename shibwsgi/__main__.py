"""``python -m shibwsgi COMMAND``: operator commands (``doctor``)."""

from __future__ import annotations

import sys

COMMANDS = ("doctor",)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(
            f"usage: python -m shibwsgi {{{','.join(COMMANDS)}}} [options]  (--help after the command)",
            file=sys.stderr,
        )
        return 2
    from .doctor import main as doctor

    return doctor(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
