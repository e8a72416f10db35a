"""Vendored front-end files: the SHA-256 manifest, tamper detection, licences and versions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from admin_web.assets import (
    MANIFEST_NAME,
    PACKAGES,
    VENDOR_DIR,
    check_manifest,
    file_sha256,
    licence_name,
    main,
    package_for,
    read_manifest,
    vendored_files,
    write_manifest,
)

EXPECTED_JS = {
    "wavesurfer.min.js": "wavesurfer.js",
    "wavesurfer.regions.min.js": "wavesurfer.js",
    "wavesurfer.timeline.min.js": "wavesurfer.js",
    "htmx.min.js": "htmx.org",
    "echarts.min.js": "echarts",
}
# Supported major versions: the admin web is written against these APIs.
MAJORS = {"wavesurfer.js": 7, "htmx.org": 2, "echarts": 5}

SEMVER = r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?"
# A version a built file states about itself: a leading /*! ... */ banner, or a `version:"x.y.z"`
# property (htmx exposes htmx.version that way).
BANNER = re.compile(rf"\A\s*/\*!?(?:[^*]|\*(?!/))*?\bv?({SEMVER})\b")
VERSION_PROPERTY = re.compile(rf"""\bversion\s*:\s*["']({SEMVER})["']""")
# ... or an assignment to a `.version` (echarts sets `t.version="5.6.0"`).
VERSION_ASSIGNMENT = re.compile(rf"""\.version\s*=\s*["']({SEMVER})["']""")


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VENDOR_DIR / name).read_text(encoding="utf-8"))
    return data


def _stated_versions(text: str) -> set[str]:
    found = set(VERSION_PROPERTY.findall(text)) | set(VERSION_ASSIGNMENT.findall(text))
    banner = BANNER.match(text)
    if banner is not None:
        found.add(banner.group(1))
    return found


@pytest.fixture()
def vendor_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "vendor"
    shutil.copytree(VENDOR_DIR, copy)
    return copy


def test_manifest_matches_files() -> None:
    assert check_manifest() == []


def test_manifest_lists_every_file_and_only_those() -> None:
    listed = read_manifest()
    assert MANIFEST_NAME not in listed
    assert sorted(listed) == vendored_files()
    for name, digest in listed.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest), name


def test_expected_files_are_vendored() -> None:
    files = set(vendored_files())
    assert set(EXPECTED_JS) <= files
    assert {"package.json", "package-lock.json", "README.md"} <= files


def test_manifest_is_in_canonical_form(vendor_copy: Path) -> None:
    committed = (vendor_copy / MANIFEST_NAME).read_bytes()
    (vendor_copy / MANIFEST_NAME).unlink()
    write_manifest(vendor_copy)
    assert (vendor_copy / MANIFEST_NAME).read_bytes() == committed


def test_untouched_copy_passes(vendor_copy: Path) -> None:
    assert check_manifest(vendor_copy) == []
    assert main(["--check", "--dir", str(vendor_copy)]) == 0


def test_changed_byte_is_detected(vendor_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = vendor_copy / "htmx.min.js"
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x01
    target.write_bytes(bytes(data))
    problems = check_manifest(vendor_copy)
    assert len(problems) == 1
    assert problems[0].startswith("hash mismatch: htmx.min.js")
    assert file_sha256(target) in problems[0]
    assert main(["--check", "--dir", str(vendor_copy)]) == 1
    assert "hash mismatch: htmx.min.js" in capsys.readouterr().out


def test_missing_and_unlisted_files_are_detected(vendor_copy: Path) -> None:
    (vendor_copy / "wavesurfer.timeline.min.js").unlink()
    (vendor_copy / "extra.js").write_text("alert(1)\n", encoding="utf-8")
    (vendor_copy / "sub").mkdir()
    (vendor_copy / "sub" / "nested.css").write_text("p{}\n", encoding="utf-8")
    assert check_manifest(vendor_copy) == [
        "missing file: wavesurfer.timeline.min.js",
        "not in manifest: extra.js",
        "not in manifest: sub/nested.css",
    ]
    write_manifest(vendor_copy)
    assert check_manifest(vendor_copy) == []
    assert "sub/nested.css" in read_manifest(vendor_copy)


def test_missing_or_malformed_manifest_is_reported(vendor_copy: Path) -> None:
    manifest = vendor_copy / MANIFEST_NAME
    original = manifest.read_text(encoding="utf-8")
    manifest.write_text(original + "not a manifest line\n", encoding="utf-8")
    [problem] = check_manifest(vendor_copy)
    assert problem.startswith(f"{MANIFEST_NAME}:") and "not a manifest line" in problem
    manifest.write_text(original + f"{'0' * 64}  ../outside.js\n", encoding="utf-8")
    [problem] = check_manifest(vendor_copy)
    assert "outside.js" in problem
    manifest.unlink()
    [problem] = check_manifest(vendor_copy)
    assert "not found" in problem


def test_every_js_file_has_its_package_licence() -> None:
    dependencies = _json("package.json")["dependencies"]
    js_files = [name for name in vendored_files() if name.endswith(".js")]
    assert js_files
    for name in js_files:
        package = package_for(name)
        assert package is not None, f"{name}: no package claims it (see PACKAGES)"
        assert package == EXPECTED_JS.get(name, package)
        assert package in dependencies, f"{name}: {package} is not in package.json"
        licence = VENDOR_DIR / licence_name(package)
        assert licence.is_file(), f"{name}: {licence.name} missing"
        assert licence.stat().st_size > 100, f"{licence.name} looks empty"


def test_package_json_pins_exact_supported_versions() -> None:
    dependencies: dict[str, str] = _json("package.json")["dependencies"]
    assert set(dependencies) == set(PACKAGES)
    for package, version in dependencies.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{package}: {version!r} is not exact"
        assert int(version.split(".")[0]) == MAJORS[package], f"{package} {version}"


def test_lock_agrees_with_package_json() -> None:
    dependencies: dict[str, str] = _json("package.json")["dependencies"]
    packages = _json("package-lock.json")["packages"]
    assert packages[""]["dependencies"] == dependencies
    for package, version in dependencies.items():
        entry = packages[f"node_modules/{package}"]
        assert entry["version"] == version
        assert entry["integrity"].startswith("sha512-")
        assert entry["resolved"].endswith(f"/{package}-{version}.tgz")


def test_built_files_state_the_pinned_version() -> None:
    """A built file that states its own version must state package.json's; one that states none
    is covered by the lock (checked above) agreeing with package.json."""
    dependencies: dict[str, str] = _json("package.json")["dependencies"]
    lock_versions = {
        package: _json("package-lock.json")["packages"][f"node_modules/{package}"]["version"]
        for package in dependencies
    }
    for name in vendored_files():
        if not name.endswith(".js"):
            continue
        package = package_for(name)
        assert package is not None
        stated = _stated_versions((VENDOR_DIR / name).read_text(encoding="utf-8"))
        if stated:
            # A bundle may also state the versions of what it bundles (echarts: zrender).
            lock = _json("package-lock.json")["packages"]
            bundled = {lock[f"node_modules/{dep}"]["version"]
                       for dep in lock[f"node_modules/{package}"].get("dependencies", {})}
            assert dependencies[package] in stated, f"{name} states {sorted(stated)}"
            assert stated <= {dependencies[package], *bundled}, f"{name} states {sorted(stated)}"
        else:
            assert lock_versions[package] == dependencies[package], name


def test_version_detection() -> None:
    assert _stated_versions('var x={a:1,version:"2.0.11"};') == {"2.0.11"}
    assert _stated_versions("/*! lib v7.12.12 | BSD */\n!function(){}();") == {"7.12.12"}
    assert _stated_versions("!function(t,e){}(this,function(){});") == set()
