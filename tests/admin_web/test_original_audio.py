"""The unredacted original of a call: served only to a role that may read it, each read in
the audit log; the player keeps serving the redacted recording."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from admin_web import audit, site_db
from core.storage.db import open_db
from tests.admin_web.conftest import StoredCall

ClientAs = Callable[[str], FlaskClient]


def _keep_original(data_dir: Path, call_id: str) -> bytes:
    kept = data_dir / "originals" / f"{call_id}.wav"
    kept.parent.mkdir(mode=0o700, exist_ok=True)
    kept.write_bytes(b"RIFF-unredacted-" + call_id.encode())
    db = open_db(data_dir / "callqa.db")
    meta = json.loads(db.execute("SELECT meta FROM calls WHERE id = ?", [call_id]).fetchone()[0])
    meta["redaction"] = {"kinds": ["card"], "spans": [], "original": str(kept)}
    db.execute("UPDATE calls SET meta = ? WHERE id = ?", [json.dumps(meta), call_id])
    db.conn.commit()
    return kept.read_bytes()


def test_original_is_read_by_admin_only_and_audited(
    client_as: ClientAs, calls: list[StoredCall], data_dir: Path
) -> None:
    call, other = calls[0], calls[1]
    raw = _keep_original(data_dir, call.id)
    url = f"/calls/{call.id}/original.wav"
    for role in ("inspector", "supervisor", "viewer"):
        assert client_as(role).get(url).status_code == 403, role
    admin = client_as("admin")
    played = admin.get(f"/calls/{call.id}/recording.wav")
    assert played.status_code == 200 and played.data != raw      # the player: redacted file
    response = admin.get(url)
    assert response.status_code == 200 and response.data == raw
    assert admin.get(f"/calls/{other.id}/original.wav").status_code == 404  # none kept
    reads = audit.entries(site_db.connect(data_dir), call_id=call.id, action="read_original")
    assert [e["username"] for e in reads] == ["alice"]
