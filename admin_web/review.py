"""Human review (人工复核): verdicts on findings, missed findings, appeals and decisions,
the review queue, sampling plans, agreement between machine and reviewers, the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort

from admin_web import roles
from admin_web.auth import require

bp = Blueprint("review", __name__)


@bp.route("/review/queue")
@require(roles.REVIEW)
def queue() -> Any:
    abort(501)


@bp.route("/appeals")
@require(roles.READ_CALLS)
def appeals() -> Any:
    abort(501)


@bp.route("/sampling")
@require(roles.SAMPLING)
def plans() -> Any:
    abort(501)


@bp.route("/agreement")
@require(roles.AGREEMENT)
def agreement() -> Any:
    abort(501)


@bp.route("/audit")
@require(roles.AUDIT)
def audit_log() -> Any:
    abort(501)
