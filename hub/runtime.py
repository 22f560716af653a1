"""The responder's config at run time, from ``ORGCONTAIN_CONFIG``.

``ORGCONTAIN_CONFIG`` is an SSM parameter (``ssm:/orgcontain/config``, read through Powertools
Parameters) or a file path (local runs). It is re-read at most every 60 s, so a pushed config
(the kill switch: ``response.mode: notify``) takes effect within a minute on warm containers.

Failure rules:
- an invalid stored config never replaces the last good one in a warm container: the error is
  logged with every key path at fault, a ``ConfigInvalid`` metric is emitted, and the last good
  config stays in force;
- a cold start with an unreadable or invalid config fails closed: :class:`ConfigUnavailable` is
  raised, the handler records every finding ``failed`` (so SQS retries it; nothing is isolated)
  and says why in the log.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.config import ConfigError, OrgContainConfig, load_config_file, load_config_text

CONFIG_ENV = "ORGCONTAIN_CONFIG"
SSM_PREFIX = "ssm:"
MAX_AGE_SECONDS = 60.0

log = logging.getLogger(__name__)


class ConfigUnavailable(RuntimeError):
    """No valid config has ever been loaded in this container."""


class ConfigFetchError(ValueError):
    """The config text could not be read (SSM error, missing parameter)."""


@dataclass(frozen=True)
class ConfigProblem:
    source: str
    message: str
    at: float


class RuntimeConfig:
    """Holds the last good config; reloads it at most every ``max_age`` seconds.

    ``fetch`` returns the config text (tests and the CLI may inject one); by default it is derived
    from ``location`` (``ssm:/name`` or a path).
    """

    def __init__(
        self,
        location: str,
        *,
        fetch: Callable[[], str] | None = None,
        ssm_client: Any = None,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_invalid: Callable[[ConfigProblem], None] | None = None,
    ) -> None:
        self.location = location
        self._fetch = fetch
        self._ssm_client = ssm_client
        self._ssm_provider: Any = None
        self.max_age = max_age
        self._clock = clock
        self._on_invalid = on_invalid
        self._lock = threading.Lock()
        self._config: OrgContainConfig | None = None
        self._digest: str | None = None
        self._loaded_at = float("-inf")
        self.last_problem: ConfigProblem | None = None

    def _read_text(self) -> str:
        if not self.location and self._fetch is None:
            raise ConfigFetchError(f"{CONFIG_ENV} is not set: no config, nothing will be isolated")
        if self._fetch is not None:
            return self._fetch()
        if self.location.startswith(SSM_PREFIX):
            name = self.location[len(SSM_PREFIX) :]
            from aws_lambda_powertools.utilities.parameters import GetParameterError, SSMProvider
            from botocore.exceptions import BotoCoreError, ClientError

            if self._ssm_provider is None:
                self._ssm_provider = (
                    SSMProvider(boto3_client=self._ssm_client) if self._ssm_client else SSMProvider()
                )
            try:
                # Powertools caches the value for max_age seconds; our last-good copy sits on top.
                return str(self._ssm_provider.get(name, max_age=int(self.max_age), decrypt=True))
            except (GetParameterError, ClientError, BotoCoreError) as exc:
                raise ConfigFetchError(f"cannot read SSM parameter {name}: {exc}") from exc
        with open(self.location, encoding="utf-8") as fh:
            return fh.read()

    def _parse(self, text: str) -> OrgContainConfig:
        if self.location.startswith(SSM_PREFIX) or self._fetch is not None:
            return load_config_text(text, self.location)
        return load_config_file(self.location)

    def get(self) -> OrgContainConfig:
        """The config in force. Raises ConfigUnavailable only if no valid config was ever loaded."""
        now = self._clock()
        if self._config is not None and now - self._loaded_at < self.max_age:
            return self._config
        with self._lock:
            if self._config is not None and now - self._loaded_at < self.max_age:
                return self._config
            try:
                text = self._read_text()
                digest = hashlib.sha256(text.encode()).hexdigest()
                if self._config is not None and digest == self._digest:
                    self._loaded_at = now
                    return self._config
                config = self._parse(text)
            except (ConfigError, OSError, ValueError) as exc:
                return self._invalid(now, str(exc))
            self._config, self._digest, self._loaded_at = config, digest, now
            self.last_problem = None
            return config

    def _invalid(self, now: float, message: str) -> OrgContainConfig:
        problem = ConfigProblem(self.location, message, now)
        self.last_problem = problem
        if self._on_invalid is not None:
            self._on_invalid(problem)
        if self._config is None:
            log.error("no valid orgcontain config (cold start): failing closed: %s", message)
            raise ConfigUnavailable(f"no valid config from {self.location}: {message}")
        # Keep the last good config; look again after max_age, not on every finding.
        log.error("stored orgcontain config is invalid; keeping the last good one: %s", message)
        self._loaded_at = now
        return self._config
