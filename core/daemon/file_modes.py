"""The daemon's files hold customers' voices and words: only its own user may read them.

`callqa serve` runs with the umask `PRIVATE_UMASK`, so that everything it creates (the
database, recordings, the spool, the assembled model, its log) is created 0600, and folders
0700, whatever the umask it was started with. At start, what an earlier run left under the
data folder with wider modes is narrowed too.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
FILE_MODE, DIR_MODE = 0o600, 0o700
PRIVATE_ENTRIES = ("callqa.db", "callqa.db-wal", "callqa.db-shm", "recordings", "spool",
                   "models")  # fmt: skip
"""What the daemon keeps under the data folder (the admin web's files are its own)."""


def use_private_umask() -> None:
    """From now on this process creates files 0600 and folders 0700."""
    os.umask(PRIVATE_UMASK)


def make_private(data_dir: Path) -> None:
    """Create the data folder 0700, and narrow the modes of the daemon's entries in it."""
    use_private_umask()
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    uid = os.geteuid()
    for name in PRIVATE_ENTRIES:
        path = data_dir / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if info.st_uid != uid or stat.S_ISLNK(info.st_mode):
            continue
        wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
        if stat.S_IMODE(info.st_mode) & ~wanted:
            os.chmod(path, wanted)
            logger.info("%s was open to group or others; its mode is now %04o", path, wanted)
