"""The session-signing secret: generated on the first start, kept in a 0600 file.

There is no fallback secret: if the file cannot be created or read, the site does not start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "admin_secret_key"
SECRET_BYTES = 32


def load_or_create(data_dir: Path) -> bytes:
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
        data = path.read_bytes().strip()
        if len(data) < 2 * SECRET_BYTES:
            raise RuntimeError(
                f"{path} is too short to be a secret key; delete it to make one"
            ) from None
        return data
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_hex(SECRET_BYTES).encode())
    return path.read_bytes().strip()
