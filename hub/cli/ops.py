"""orgcontain CLI: ops commands (to be built)."""

from __future__ import annotations
