"""The admin web: where QA inspectors, supervisors and administrators work.

`create_app` builds the Flask app; `callqa admin serve` serves it with waitress. The site
reads the calls that `callqa serve`/`callqa score` stored (read-only), keeps its own data
(users, reviews, appeals, sampling plans, the audit log) in a database of its own, and asks
the daemon over gRPC for live state. One blueprint per area:

* `admin_web.auth`: login, logout, language; the permission checks;
* `admin_web.calls`: the call list and the call page (player, transcript, score);
* `admin_web.review`: human review, appeals, the review queue, sampling plans, agreement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from flask_wtf.csrf import CSRFProtect

from admin_web import daemon, db, errors, i18n, labels, secret, site_db
from core.config import Settings, load_settings

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

csrf = CSRFProtect()


def app_settings() -> Settings:
    """The settings the running app was created with (`create_app` reads them once)."""
    settings: Settings = current_app.extensions["callqa_settings"]
    return settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The admin web app.

    Settings come from the project's settings table (defaults, TOML file, environment);
    `config` overrides Flask keys (``DATA_DIR``, ``TESTING``...), as tests do.
    """
    settings = load_settings()
    overrides = dict(config or {})
    data_dir = Path(str(overrides.get("DATA_DIR", settings.data_dir))).expanduser()
    daemon_address = settings.admin_daemon_address or f"127.0.0.1:{settings.grpc_port}"

    app = Flask(__name__)
    app.config.update(
        DATA_DIR=str(data_dir),
        SESSION_IDLE_S=settings.admin_session_idle_s,
        LOCKOUT_FAILURES=settings.admin_lockout_failures,
        LOCKOUT_S=settings.admin_lockout_s,
        DAEMON_ADDRESS=daemon_address,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.admin_tls,
        SESSION_COOKIE_NAME="callqa_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        MAX_CONTENT_LENGTH=1 << 20,
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE=i18n.DEFAULT_LANGUAGE,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
    )
    app.config.update(overrides)
    data_dir = Path(app.config["DATA_DIR"])
    app.extensions["callqa_settings"] = settings.replace(data_dir=data_dir)
    site_db.prepare(data_dir)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret.load_or_create(data_dir)

    csrf.init_app(app)
    db.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    app.jinja_env.globals.update(labels.template_globals())
    app.extensions["callqa_daemon"] = daemon.DaemonClient(app.config["DAEMON_ADDRESS"], settings)

    from admin_web import auth, calls, review

    app.register_blueprint(auth.bp)
    app.register_blueprint(calls.bp)
    app.register_blueprint(review.bp)
    from admin_web import capacity, live, users_admin  # live lines, capacity, users
    app.register_blueprint(live.bp)
    app.register_blueprint(capacity.bp)
    app.register_blueprint(users_admin.bp)
    from admin_web import dryrun
    app.register_blueprint(dryrun.bp)
    from admin_web import reports, search  # quality reports, transcript search
    app.register_blueprint(reports.bp)
    app.register_blueprint(search.bp)
    from admin_web import rubrics  # rubric editor, versions, routes
    app.register_blueprint(rubrics.bp)

    @app.context_processor
    def page_context() -> dict[str, Any]:
        return {"daemon_status": daemon_status, "user": g.get("user")}

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if g.get("user") is not None:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def daemon_status() -> daemon.DaemonStatus:
    """Whether the daemon answers (cached a few seconds); shown on every page."""
    from flask import current_app

    client: daemon.DaemonClient = current_app.extensions["callqa_daemon"]
    return client.status()
