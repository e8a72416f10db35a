"""What one check of `callqa doctor` found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict: ``message`` says what was found, ``fix`` what to do about it."""

    name: str
    status: Status
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


def ok(name: str, message: str) -> CheckResult:
    return CheckResult(name, Status.OK, message)


def warn(name: str, message: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, message, fix)


def fail(name: str, message: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, message, fix)
