"""`orgcontain package`: the hub Lambda's zip, reproducibly.

The zip holds ``hub`` (without the operator CLI and the moto demo), ``spoke`` and their runtime
dependencies built for the Lambda platform (``python3.12`` on ``arm64``). boto3/botocore come from
the Lambda runtime and moto, typer and rich are never imported on the Lambda path, so they stay out.

Reproducible: entries sorted, every timestamp fixed, permissions normalised, no ``.pyc`` files; the
same sources and dependency versions give the same bytes and so the same sha256 (which ``deploy``
uses as the S3 key, so an unchanged package changes nothing).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

LAMBDA_PLATFORM = "manylinux2014_aarch64"
LAMBDA_PYTHON = "3.12"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold
# Distributions the Lambda runtime provides or the Lambda path never imports.
EXCLUDED_DISTRIBUTIONS = frozenset({"boto3", "botocore", "s3transfer", "moto", "typer", "rich"})
# Top-level names those distributions install (removed after pip resolved them as dependencies).
_EXCLUDED_TOP_LEVEL = ("boto3", "botocore", "s3transfer", "moto")
# Parts of our own packages the Lambda does not need (and that import moto, typer or rich).
_EXCLUDED_SOURCE_DIRS = (("hub", "cli"), ("hub", "demo"))
_SKIP_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


class PackageError(RuntimeError):
    """The package could not be built (message is one line for the CLI)."""


@dataclass(frozen=True)
class Package:
    path: Path
    sha256: str
    size: int
    files: int

    @property
    def s3_key(self) -> str:
        return f"lambda/orgcontain-{self.sha256[:20]}.zip"


def _requirement_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return match.group(1).lower().replace("_", "-") if match else ""


def runtime_requirements() -> list[str]:
    """The project's runtime requirements minus what the Lambda runtime has or never imports."""
    from importlib import metadata

    try:
        requires = metadata.requires("orgcontain") or []
    except metadata.PackageNotFoundError:
        raise PackageError("the orgcontain distribution is not installed (pip install -e .)") from None
    out = []
    for req in requires:
        if "extra ==" in req:  # dev extras
            continue
        if _requirement_name(req) in EXCLUDED_DISTRIBUTIONS:
            continue
        out.append(req.split(";")[0].strip())
    return sorted(out)


def _source_root(package: str) -> Path:
    return Path(str(resources.files(package)))


def _iter_files(
    root: Path, arc_prefix: str, skip_dirs: Iterable[tuple[str, ...]] = ()
) -> Iterator[tuple[str, Path]]:
    skip = {tuple(parts) for parts in skip_dirs}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        parts = (arc_prefix, *rel.parts) if arc_prefix else rel.parts
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_NAMES and (*parts, d) not in skip and not d.startswith(".")
        )
        for name in filenames:
            if name.endswith(_SKIP_SUFFIXES):
                continue
            yield "/".join((*parts, name)), Path(dirpath) / name


def _source_files() -> list[tuple[str, Path]]:
    files = []
    for package in ("hub", "spoke"):
        for arc, path in _iter_files(_source_root(package), package, _EXCLUDED_SOURCE_DIRS):
            if arc == "hub/template.yaml":  # the stack template is not code
                continue
            files.append((arc, path))
    return files


def install_dependencies(target: Path, requirements: list[str] | None = None) -> None:
    """pip-install the runtime requirements for the Lambda platform into ``target``."""
    reqs = requirements if requirements is not None else runtime_requirements()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        LAMBDA_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON,
        "--only-binary=:all:",
        "--target",
        str(target),
        *reqs,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise PackageError(f"could not fetch the Lambda dependencies: {last}")
    for name in os.listdir(target):
        top = name.split("-")[0].lower()
        if top in _EXCLUDED_TOP_LEVEL and (name == top or name.endswith((".dist-info", ".egg-info"))):
            path = target / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # pip --target leaves an empty bin/ and console scripts that point at this machine's python.
    bin_dir = target / "bin"
    if bin_dir.is_dir():
        shutil.rmtree(bin_dir)


def _dependency_files(deps_dir: Path) -> list[tuple[str, Path]]:
    return list(_iter_files(deps_dir, ""))


def write_zip(entries: list[tuple[str, Path]], out: Path) -> None:
    """A zip whose bytes depend only on the entries' names and contents."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    seen: set[str] = set()
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for arc, path in sorted(entries, key=lambda e: e[0]):
            if arc in seen:
                raise PackageError(f"two files for {arc} in the package (a dependency shadows our code?)")
            seen.add(arc)
            info = zipfile.ZipInfo(arc, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is honoured
            # One mode for every file: a checkout's exec bits must not change the hash, and
            # the Lambda runtime imports, never executes, these files.
            info.external_attr = 0o100644 << 16
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    tmp.replace(out)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build(out: Path, *, deps_dir: Path | None = None, with_deps: bool = True) -> Package:
    """Build the zip at ``out``.

    ``deps_dir``: an already-installed dependency tree to include (no network); otherwise, with
    ``with_deps``, the dependencies are pip-installed for the Lambda platform into a temporary
    folder; ``with_deps=False`` packages our code alone.
    """
    entries = _source_files()
    if deps_dir is not None:
        if not deps_dir.is_dir():
            raise PackageError(f"dependency folder {deps_dir} does not exist")
        entries += _dependency_files(deps_dir)
        write_zip(entries, out)
    elif with_deps:
        with tempfile.TemporaryDirectory(prefix="orgcontain-deps-") as tmp:
            install_dependencies(Path(tmp))
            entries += _dependency_files(Path(tmp))
            write_zip(entries, out)
    else:
        write_zip(entries, out)
    return Package(path=out, sha256=sha256_of(out), size=out.stat().st_size, files=len(entries))
