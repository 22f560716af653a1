"""orgcontain CLI: configcmd commands (to be built)."""

from __future__ import annotations
