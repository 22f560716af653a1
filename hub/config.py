"""The responder's configuration (`config/orgcontain.yaml`): model, loader and error reporting.

Validation is strict on purpose: an unknown key is far more likely a typo in an opt-out than a
feature, and a typo in an opt-out means an isolation nobody wanted. Every error names the key
path (``accounts.333333333333.mode``) and, when the text came from YAML, the line.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

ACCOUNT_ID_RE = r"^\d{12}$"
OU_ID_RE = r"^ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}$"
ORG_ID_RE = r"^o-[a-z0-9]{10,32}$"
REGION_RE = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$"
PREFIX_LIST_RE = r"^pl-[0-9a-f]{8,17}$"
SECURITY_GROUP_RE = r"^sg-[0-9a-f]{8,17}$"
# IAM role names: 64 characters, [\w+=,.@-]; the region and a dash are appended to the prefix.
ROLE_PREFIX_RE = r"^[\w+=,.@-]{1,40}$"

AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_RE)]
OuId = Annotated[str, StringConstraints(pattern=OU_ID_RE)]
Region = Annotated[str, StringConstraints(pattern=REGION_RE)]

# A quarantine whose ingress admits more than this much of the address space is not a quarantine.
MIN_IPV4_PREFIX = 8
MIN_IPV6_PREFIX = 32


class Mode(StrEnum):
    """Response modes, mildest first. ``rank`` orders them for ceilings and tag exemptions."""

    OFF = "off"
    NOTIFY = "notify"
    DRY_RUN = "dry-run"
    ISOLATE = "isolate"

    @property
    def rank(self) -> int:
        return _MODE_RANK[self]

    @classmethod
    def mildest(cls, *modes: Mode) -> Mode:
        return min(modes, key=lambda m: m.rank)


_MODE_RANK = {Mode.OFF: 0, Mode.NOTIFY: 1, Mode.DRY_RUN: 2, Mode.ISOLATE: 3}


def _reject_yaml_boolean_mode(value: Any) -> Any:
    # YAML 1.1 reads an unquoted `off` as false and `on` as true; say so instead of "invalid enum".
    if isinstance(value, bool):
        raise ValueError(
            f'got the YAML boolean {str(value).lower()}: quote the mode, e.g. mode: "off" '
            "(YAML 1.1 reads unquoted off/on/no/yes as booleans)"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class IngressRule(_Strict):
    """One forensic/SOC ingress source kept open on the quarantine group."""

    cidr: str | None = None
    prefix_list: Annotated[str, StringConstraints(pattern=PREFIX_LIST_RE)] | None = None
    security_group: Annotated[str, StringConstraints(pattern=SECURITY_GROUP_RE)] | None = None
    ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1, max_length=20)]
    protocol: Literal["tcp", "udp"] = "tcp"
    description: Annotated[str, StringConstraints(max_length=255)] = ""

    @field_validator("cidr")
    @classmethod
    def _cidr_is_narrow(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a valid CIDR block: {exc}") from None
        floor = MIN_IPV4_PREFIX if net.version == 4 else MIN_IPV6_PREFIX
        if net.prefixlen < floor:
            raise ValueError(
                f"{value} opens the quarantine to too much of the internet (prefix shorter than /{floor}); "
                "a quarantine open to the world is not a quarantine: name the SOC's own hosts or ranges"
            )
        return str(net)

    @field_validator("ports")
    @classmethod
    def _ports_unique(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("ports are listed twice")
        return sorted(value)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> IngressRule:
        sources = [s for s in (self.cidr, self.prefix_list, self.security_group) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one source: cidr, prefix_list or security_group")
        return self

    @property
    def is_ipv6(self) -> bool:
        return self.cidr is not None and ":" in self.cidr


class FindingTypes(_Strict):
    include: Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)] = ["*"]
    exclude: list[Annotated[str, StringConstraints(min_length=1)]] = []


class Breaker(_Strict):
    """Org-wide blast-radius breaker: beyond ``max_isolations`` in the window, notify only."""

    max_isolations: Annotated[int, Field(ge=1, le=10_000)] = 20
    window_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 60


class Response(_Strict):
    mode: Mode = Mode.ISOLATE
    min_severity: Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)] = 7.0
    finding_types: FindingTypes = FindingTypes()
    sever_tracked_connections: bool = True
    snapshot_volumes: bool = True
    detach_from_autoscaling: bool = True
    # Chosen by us (DESIGN is silent): standby keeps the instance in the group's books without
    # traffic or health-check replacement; detach makes it standalone. Both launch a replacement.
    autoscaling_action: Literal["standby", "detach"] = "detach"
    deregister_from_load_balancers: bool = True
    detach_instance_profile: bool = True
    # Off by default: the deny applies to every holder of the role, not just this instance.
    revoke_role_sessions: bool = False
    termination_protection: bool = True
    quarantine_ingress: Annotated[list[IngressRule], Field(max_length=50)] = []
    breaker: Breaker = Breaker()

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_not_bool(cls, value: Any) -> Any:
        return _reject_yaml_boolean_mode(value)

    @field_validator("min_severity")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number from 0 to 10")
        return value


class Override(_Strict):
    """Per-OU or per-account override; ``reason`` is shown in every decision it causes."""

    mode: Mode
    reason: Annotated[str, StringConstraints(max_length=500)] = ""

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_not_bool(cls, value: Any) -> Any:
        return _reject_yaml_boolean_mode(value)


class Hub(_Strict):
    account_id: AccountId
    region: Region


class OrgContainConfig(_Strict):
    organization_id: Annotated[str, StringConstraints(pattern=ORG_ID_RE)]
    hub: Hub
    trusted_event_accounts: Annotated[list[AccountId], Field(min_length=1)]
    regions: Annotated[list[Region], Field(min_length=1)]
    spoke_role_prefix: Annotated[str, StringConstraints(pattern=ROLE_PREFIX_RE)] = "orgcontain-spoke"
    response: Response = Response()
    organizational_units: dict[OuId, Override] = {}
    accounts: dict[AccountId, Override] = {}

    @field_validator("trusted_event_accounts", "regions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"listed more than once: {', '.join(dupes)}")
        return value

    @field_validator("organizational_units", "accounts", mode="before")
    @classmethod
    def _keys_are_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValueError(
                        f"key {key!r} is not a string: quote account ids "
                        "(YAML reads 012345678901 as a number)"
                    )
        return value

    def role_name(self, region: str) -> str:
        """The spoke role's name in ``region`` (IAM is global, so the region is part of it)."""
        return f"{self.spoke_role_prefix}-{region}"


# --------------------------------------------------------------------------------------------
# Loading, with errors that name the key path and the line.


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '(top level)'}: {self.message}"


class ConfigError(ValueError):
    """An invalid configuration; ``issues`` lists every problem found, each with its key path."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"invalid orgcontain config {source}:\n{lines}")


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map every key path in a YAML document to its 1-based line, for error messages."""
    index: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                index[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return index


def _issues_from(exc: ValidationError, lines: dict[tuple[str, ...], int]) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are rejected)"
        elif err["type"] == "missing":
            message = "required key is missing"
        line = None
        probe = loc
        while probe and line is None:
            line = lines.get(probe)
            probe = probe[:-1]
        issues.append(ConfigIssue(path=".".join(loc), message=message, line=line))
    return issues


def parse_config(data: Any, source: str = "<config>", text: str | None = None) -> OrgContainConfig:
    """Validate already-decoded config data; raises ConfigError naming every bad key path."""
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "the config must be a mapping of keys")])
    try:
        return OrgContainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _issues_from(exc, _line_index(text) if text else {})) from None


def load_config_text(text: str, source: str = "<config>") -> OrgContainConfig:
    """Parse YAML (or JSON, which is YAML) config text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigIssue("", f"not valid YAML: {exc}", line)]) from None
    return parse_config(data, source, text)


def load_config_file(path: str | Path) -> OrgContainConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [ConfigIssue("", f"cannot read the file: {exc.strerror}")]) from None
    return load_config_text(text, str(p))


def json_schema() -> dict[str, Any]:
    schema = OrgContainConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orgcontain configuration"
    return schema


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """GuardDuty types contain ':' '/' '.' '!' '&': only ``*`` and ``?`` are wildcards."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$")


if __name__ == "__main__":  # python -m hub.config > config/orgcontain.schema.json
    print(render_json_schema(), end="")
