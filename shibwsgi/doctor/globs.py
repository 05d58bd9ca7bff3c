"""Include patterns matched with a bound on the directory entries read.

``Include /*/*/*/*/*.conf`` makes :func:`glob.glob` walk the whole file system before the
first match; httpd would too, but the doctor must answer. Matching stops after
``MAX_ENTRIES`` directory entries, and the caller reports the pattern as too broad.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import PurePath

__all__ = ["MAX_ENTRIES", "bounded_glob"]

MAX_ENTRIES = 100_000


def bounded_glob(pattern: str, limit: int) -> tuple[list[str], bool]:
    """Up to ``limit`` paths matching ``pattern``, sorted; and whether the entry bound was hit."""
    parts = PurePath(pattern).parts
    absolute = os.path.isabs(pattern)
    candidates = [parts[0]] if absolute else [""]
    read = 0
    for part in parts[1:] if absolute else parts:
        found = []
        for base in candidates:
            if not glob.has_magic(part):
                path = os.path.join(base, part)
                if os.path.lexists(path):
                    found.append(path)
                continue
            try:
                with os.scandir(base or ".") as entries:
                    for entry in entries:
                        read += 1
                        if read > MAX_ENTRIES:
                            return [], True
                        hidden = entry.name.startswith(".") and not part.startswith(".")
                        if not hidden and fnmatch.fnmatchcase(entry.name, part):
                            found.append(os.path.join(base, entry.name))
            except OSError:  # not a directory, or gone: no match under it
                continue
        candidates = found
    return sorted(candidates)[:limit], False
