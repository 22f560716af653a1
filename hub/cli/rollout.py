"""orgcontain CLI: rollout commands (to be built)."""

from __future__ import annotations
