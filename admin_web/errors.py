"""Error pages, and the one JSON error shape of the JSON endpoints.

A JSON error is ``{"error": {"status": 403, "message": "..."}}``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException


def error_response(status: int, message: str) -> Any:
    response = jsonify({"error": {"status": status, "message": message}})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _messages() -> dict[int, str]:
    return {
        400: _("The request was not understood."),
        401: _("Please log in."),
        403: _("You do not have permission to see this."),
        404: _("Not found."),
        405: _("This action is not allowed here."),
        413: _("The upload is too large."),
        416: _("The requested range is not in the file."),
    }


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        message = _("The form has expired or was not sent by this site. Reload the page and "
                    "try again.")
        if _wants_json():
            return error_response(400, message)
        return render_template("errors/error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = _messages().get(status, exc.description or "")
        if _wants_json():
            return error_response(status, message)
        return render_template("errors/error.html", status=status, message=message), status
