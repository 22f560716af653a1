"""`orgcontain package`: a reproducible Lambda zip."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import zipfile
from pathlib import Path

import pytest
from rollout_support import run_cli

from stacksets.package import FIXED_TIME, PackageError, build, runtime_requirements


def _fake_deps(root: Path) -> Path:
    """A stand-in for a pip --target tree (no network): a package and its dist-info."""
    (root / "pydantic").mkdir(parents=True)
    (root / "pydantic" / "__init__.py").write_text("VERSION = '2'\n")
    (root / "pydantic-2.0.dist-info").mkdir()
    (root / "pydantic-2.0.dist-info" / "RECORD").write_text("pydantic/__init__.py,,\n")
    (root / "pydantic" / "__pycache__").mkdir()
    (root / "pydantic" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"junk")
    return root


def test_two_builds_give_the_same_hash_whatever_the_file_times(tmp_path: Path) -> None:
    deps = _fake_deps(tmp_path / "deps")
    first = run_cli("package", "--out", str(tmp_path / "a.zip"), "--deps-dir", str(deps), "--json")
    assert first.exit_code == 0, first.output
    # Touch every dependency file: timestamps must not reach the zip.
    for path in deps.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    second = run_cli("package", "--out", str(tmp_path / "b.zip"), "--deps-dir", str(deps), "--json")
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["sha256"] == b["sha256"]
    assert a["sha256"] == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()
    assert a["size"] == (tmp_path / "a.zip").stat().st_size


def test_zip_holds_the_lambda_code_and_nothing_it_must_not(tmp_path: Path) -> None:
    deps = _fake_deps(tmp_path / "deps")
    pkg = build(tmp_path / "p.zip", deps_dir=deps)
    with zipfile.ZipFile(pkg.path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert "hub/handler.py" in names or "hub/config.py" in names
    assert "spoke/models.py" in names
    assert "pydantic/__init__.py" in names and "pydantic-2.0.dist-info/RECORD" in names
    assert not [n for n in names if n.startswith(("hub/cli/", "hub/demo/", "tests/", "stacksets/"))]
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert "hub/template.yaml" not in names
    assert {i.date_time for i in infos} == {FIXED_TIME}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_code_only_package_and_plain_output(tmp_path: Path) -> None:
    result = run_cli("package", "--out", str(tmp_path / "c.zip"), "--no-deps")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(str(tmp_path / "c.zip")) and "sha256 " in line and "bytes" in line


def test_runtime_requirements_leave_out_what_the_lambda_runtime_has() -> None:
    reqs = " ".join(runtime_requirements()).lower()
    assert "pydantic" in reqs and "powertools" in reqs
    for name in ("boto3", "botocore", "moto", "typer", "rich", "pytest"):
        assert name not in reqs


def test_missing_deps_dir_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run_cli("package", "--out", str(tmp_path / "x.zip"), "--deps-dir", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output


def _registry_reachable() -> bool:
    try:
        with socket.create_connection(("pypi.org", 443), timeout=3):
            return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _registry_reachable(), reason="package registry unreachable (no network)")
def test_real_dependency_fetch_for_the_lambda_platform(tmp_path: Path) -> None:
    try:
        pkg = build(tmp_path / "full.zip")
    except PackageError as exc:
        if any(word in str(exc).lower() for word in ("connection", "network", "resolve", "timed out")):
            pytest.skip(f"package registry unreachable: {exc}")
        raise
    with zipfile.ZipFile(pkg.path) as zf:
        names = zf.namelist()
    # arm64 (aarch64) CPython 3.12 binaries, and no boto3/botocore (the runtime has them)
    assert any(n.startswith("pydantic_core/_pydantic_core.cpython-312-aarch64") for n in names)
    assert any(n.startswith("yaml/") for n in names)
    assert any(n.startswith("aws_lambda_powertools/") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("boto3", "botocore", "s3transfer", "moto")]
    again = build(tmp_path / "again.zip")
    assert again.sha256 == pkg.sha256


def test_packaged_handler_imports_without_the_cli_or_moto(tmp_path: Path) -> None:
    """The zip's own code is complete: the Lambda entry point imports from it alone, with moto,
    typer and rich unavailable (they are not in the package)."""
    import subprocess
    import sys

    pytest.importorskip("hub.handler", reason="hub/handler.py does not exist yet")
    pkg = build(tmp_path / "code.zip", with_deps=False)
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(pkg.path) as zf:
        zf.extractall(root)
    script = f"""
import sys
sys.path.insert(0, {str(root)!r})
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("moto", "typer", "rich", "stacksets"):
            raise ImportError("not in the Lambda package: " + name)
        return None
sys.meta_path.insert(0, Block())
import hub.handler
assert hub.handler.__file__.startswith({str(root)!r}), hub.handler.__file__
assert callable(hub.handler.lambda_handler)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
