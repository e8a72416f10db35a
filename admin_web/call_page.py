"""The call page (player, timeline, transcript, score, review) and the call's recording.

Routes, on the `calls` blueprint:

* ``GET /calls/<id>``: the page (``calls.read``);
* ``GET /calls/<id>/recording.wav``: the recording as PCM16 stereo, agent left, with HTTP
  range requests (``play``); one audit entry per playback, not per range request;
* ``GET /calls/<id>/peaks.json``: per channel min/max peaks and the duration (``play``);
* ``GET /calls/<id>/download``: the same WAV as an attachment (``download``), audit-logged.

Every route finds the call through `calls_data` with the user's team scope: a supervisor
gets 404 for another team's call, exactly as for a call that does not exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, render_template, request, send_file, url_for
from flask_babel import gettext as _

from admin_web import audio, audit, call_view, calls_data, labels, review_data, roles
from admin_web.auth import current_user, require
from admin_web.calls import bp
from admin_web.db import get_conn
from admin_web.errors import error_response

WAV_MIMETYPE = "audio/wav"
# Customers' voices stay out of browser and proxy caches.
PRIVATE_AUDIO_CACHE = "no-store"


def _data_dir() -> Path:
    return Path(current_app.config["DATA_DIR"])


def _unavailable_message(exc: audio.RecordingUnavailable) -> str:
    if exc.reason == "none":
        return _("This call has no recording.")
    if exc.reason == "missing":
        return _("The recording file of this call is no longer on the box (it may have been "
                 "removed by the retention policy or moved). Ask an administrator.")
    return _("The recording file of this call cannot be read: it is damaged or in a format "
             "the site does not know. Ask an administrator.")


def _not_available(exc: audio.RecordingUnavailable, as_json: bool = False) -> Any:
    status = 404 if exc.reason in ("none", "missing") else 500
    message = _unavailable_message(exc)
    if as_json or request.accept_mimetypes.best == "application/json":
        return error_response(status, message)
    return render_template("errors/error.html", status=status, message=message), status


def _scoped_call(call_id: str) -> dict[str, Any]:
    """The call's row if the user may see it; 404 otherwise."""
    row = calls_data.call_in_scope(get_conn(), call_id, team_scope=current_user().team_scope)
    if row is None:
        abort(404)
    row["meta"] = json.loads(row.get("meta") or "{}")
    return row


def _starts_playback() -> bool:
    """Whether this request starts a playback: no Range header, or a range from byte 0.

    A media element asks for ``bytes=0-`` when it starts and for later ranges when it
    seeks or buffers; only the first is a new playback.
    """
    if request.method != "GET":
        return False
    if "Range" not in request.headers:
        return True
    parsed = request.range
    if parsed is None or parsed.units != "bytes" or not parsed.ranges:
        return True             # an unusable Range header: the whole file is sent
    return parsed.ranges[0][0] == 0


def _converted(row: dict[str, Any]) -> audio.Converted:
    return audio.prepare(_data_dir(), row["id"], row.get("recording_path"), row["meta"])


@bp.route("/calls/<call_id>")
@require(roles.READ_CALLS)
def call_page(call_id: str) -> Any:
    user = current_user()
    conn = get_conn()
    call = calls_data.get_call(conn, call_id, team_scope=user.team_scope)
    if call is None:
        abort(404)
    metrics = call.get("metrics") or {}
    yaml_text = calls_data.rubric_yaml(conn, call.get("rubric_id"), call.get("rubric_version"))
    ctx = call_view.EvidenceContext(
        items=call_view.rubric_items(yaml_text) if yaml_text else {},
        rate_unit=str(metrics.get("rate_unit") or "chars"),
        utterances={int(u["seq"]): str(u["text"]) for u in call["utterances"]},
    )
    for f in call["findings"]:
        f["readable"] = call_view.finding_evidence(f, ctx)
    duration = call_view.call_duration(call)
    can_play = user.can(roles.PLAY)
    channels = call["meta"].get("channels")
    lanes = audio.lanes_for(call["meta"], channels if isinstance(channels, int) else 2)
    speakers = labels.speaker_names()
    if call["meta"].get("mono_speaker") == "mixed":
        # one stream carried both parties: its lines are stored on the agent's leg
        speakers["agent"] = speakers["mixed"]
    page_data = {
        "callId": call["id"],
        "duration": duration,
        "canPlay": can_play and bool(call.get("recording_path")),
        "audioUrl": url_for("calls.recording", call_id=call["id"]) if can_play else None,
        "peaksUrl": url_for("calls.peaks", call_id=call["id"]) if can_play else None,
        "lanes": list(lanes),
        "laneNames": {k: v for k, v in speakers.items() if k in ("agent", "customer", "mixed")},
        "messages": {
            "play": _("Play"),
            "pause": _("Pause"),
            "loading": _("Loading the waveform…"),
            "failed": _("The recording cannot be played."),
        },
    }
    return render_template(
        "calls/call.html",
        call=call,
        duration=duration,
        lines=call_view.transcript_lines(call["utterances"]),
        lanes=call_view.timeline(call, duration),
        breakdown=call_view.score_breakdown(call, ctx),
        status_name=call_view.status_name(str(call.get("status") or "")),
        can_play=can_play,
        can_download=user.can(roles.DOWNLOAD),
        page_data=page_data,
        player_lanes=lanes,
        review=review_data.panel_context(conn, call, user),
        shaky_confidence=call_view.SHAKY_CONFIDENCE,
        shaky_no_speech=call_view.SHAKY_NO_SPEECH_PROB,
        speakers=speakers,
    )


def _serve_wav(call_id: str, action: str, as_attachment: bool) -> Any:
    """The call's PCM16 WAV with range requests; one audit entry (`action`) per playback
    or download, not per range request."""
    row = _scoped_call(call_id)
    try:
        converted = _converted(row)
    except audio.RecordingUnavailable as exc:
        return _not_available(exc)
    response = send_file(converted.wav_path, mimetype=WAV_MIMETYPE, conditional=True,
                         as_attachment=as_attachment, download_name=f"{row['id']}.wav")
    response.headers["Cache-Control"] = PRIVATE_AUDIO_CACHE
    if _starts_playback() and response.status_code in (200, 206):
        audit.record(get_conn(), current_user().username, action, call_id=row["id"],
                     detail={"range": request.headers.get("Range")})
    return response


@bp.route("/calls/<call_id>/recording.wav")
@require(roles.PLAY)
def recording(call_id: str) -> Any:
    return _serve_wav(call_id, "play", as_attachment=False)


@bp.route("/calls/<call_id>/peaks.json")
@require(roles.PLAY)
def peaks(call_id: str) -> Any:
    row = _scoped_call(call_id)
    try:
        converted = _converted(row)
    except audio.RecordingUnavailable as exc:
        return _not_available(exc, as_json=True)
    return Response(converted.peaks_path.read_bytes(), mimetype="application/json")


@bp.route("/calls/<call_id>/download")
@require(roles.DOWNLOAD)
def download(call_id: str) -> Any:
    return _serve_wav(call_id, "download", as_attachment=True)


@bp.route("/calls/<call_id>/original.wav")
@require(roles.ORIGINAL_AUDIO)
def original(call_id: str) -> Any:
    """The unredacted recording as stored (kept only with ``redaction_keep_original``); every
    read is audit-logged. The player and downloads above serve the redacted one."""
    row = _scoped_call(call_id)
    info = row["meta"].get("redaction")
    kept = info.get("original") if isinstance(info, dict) else None
    if not kept or not Path(kept).is_file():
        abort(404)
    audit.record(get_conn(), current_user().username, "read_original", call_id=row["id"],
                 detail={"range": request.headers.get("Range")})
    response = send_file(kept, mimetype=WAV_MIMETYPE, conditional=True, as_attachment=True,
                         download_name=f"{row['id']}-original.wav")
    response.headers["Cache-Control"] = PRIVATE_AUDIO_CACHE
    return response
