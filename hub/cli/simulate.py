"""orgcontain CLI: simulate commands (to be built)."""

from __future__ import annotations
