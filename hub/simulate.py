"""Offline policy evaluation (``orgcontain simulate``): input readers, normalisation, summary.

The decision itself is ``hub.policy.decide``, the same function the hub runs; this module only
reads findings and tallies what the policy would do with them.

Input shapes, all accepted in files given one by one or found in folders (``*.json``,
``*.jsonl``, ``*.ndjson``, recursively, hidden files skipped):

- an EventBridge event (``detail`` = the finding), as the hub receives it;
- a bare finding (camelCase, the event's ``detail``);
- ``{"Findings": [...]}`` as ``aws guardduty get-findings`` prints it: PascalCase keys, normalised
  here to the camelCase event shape (``AccountId`` -> ``accountId``);
- a JSON array of any of these;
- JSON Lines of any of these, one per line.

Memory: JSON Lines are streamed line by line, so memory does not grow with the number of findings
(the summary keeps counters and the top of the "would isolate" list, not the findings). A single
JSON document (a pretty-printed file, a large ``get-findings`` dump) is the exception: its text is
read whole, although its array elements are decoded and evaluated one at a time. Convert a very
large dump to JSON Lines first (``jq -c '.Findings[]' dump.json > findings.jsonl``).

Speed: the hot path hands each raw JSON line to ``Finding.model_validate_json`` (pydantic-core
parses and validates in Rust; no Python-level JSON decoding) and to ``decide``, and formats the
``--json`` row without ``json.dumps`` of a dict. Anything that fails the fast path is decoded
again on a slow path that recognises the other shapes and explains what is wrong, with file and
line.
"""

from __future__ import annotations

import codecs
import heapq
import io
import itertools
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.config import ACCOUNT_ID_RE, OU_ID_RE, OrgContainConfig
from hub.models import FINDING_DETAIL_TYPE, GUARDDUTY_SOURCE, Decision, Finding

INPUT_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})
STDIN = "-"
# Findings are 2-4 KB a line: the default 8 KB buffer refills every few lines, a 1 MB one
# reads a line for a third of the cost.
READ_BUFFER = 1 << 20

# Keys of the ``--json`` rows, in order (DESIGN "orgcontain simulate").
ROW_KEYS = ("finding_id", "account_id", "region", "instance_id", "type", "severity", "decision", "reason")

_ROOT_OR_OU_RE = re.compile(rf"^r-[0-9a-z]{{4,32}}$|{OU_ID_RE}")
_ACCOUNT_RE = re.compile(ACCOUNT_ID_RE)
_PASCAL_KEY_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_WS_RE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_ISOLATED = Decision.ISOLATED.value
_K = TypeVar("_K")


class InputError(ValueError):
    """A problem with the command's inputs as a whole (no file, unreadable ORG.json): one line."""


# --------------------------------------------------------------------------------------------
# What the readers produce


@dataclass(frozen=True, slots=True)
class Malformed:
    """An entry that is not a usable GuardDuty finding; counted and reported, never fatal."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


# What a reader yields: a validated finding, or why an entry is not one.
Item = Finding | Malformed


# --------------------------------------------------------------------------------------------
# Finding the input files


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively; ``*.json``, ``*.jsonl``, ``*.ndjson``; hidden ones skipped).

    Files named explicitly are read whatever their suffix; ``-`` is standard input.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if str(raw) == STDIN:
            files.append(Path(STDIN))
        elif path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.suffix.lower() in INPUT_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.is_file()
            ]
            if not found:
                raise InputError(f"{path}: no .json, .jsonl or .ndjson files in this folder")
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def input_size(files: Sequence[Path]) -> int | None:
    """Total bytes to read (None when standard input is among them: size unknown)."""
    total = 0
    for f in files:
        if str(f) == STDIN:
            return None
        total += f.stat().st_size
    return total


# --------------------------------------------------------------------------------------------
# Normalisation of the other shapes


def pascal_to_camel(value: Any) -> Any:
    """``aws guardduty get-findings`` / boto3 shape -> the EventBridge ``detail`` shape.

    Only keys that look like API member names (``InstanceDetails``, ``S3BucketDetails``) are
    renamed; keys that are data (``AWS::EC2::Instance`` in ``affectedResources``) are kept.
    """
    if isinstance(value, dict):
        return {
            (k[0].lower() + k[1:] if _PASCAL_KEY_RE.match(k) else k): pascal_to_camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [pascal_to_camel(v) for v in value]
    return value


def _is_pascal_finding(obj: Mapping[str, Any]) -> bool:
    return "accountId" not in obj and ("AccountId" in obj or ("Id" in obj and "Type" in obj))


def _is_asff(obj: Mapping[str, Any]) -> bool:
    return "ProductArn" in obj or ("AwsAccountId" in obj and "GeneratorId" in obj)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(exc: ValidationError, prefix: str = "", limit: int = 3) -> str:
    """One line naming the offending fields (camelCase paths, as in the event)."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        loc = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            parts.append(f"{loc or 'finding'}: required field missing")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = f" (got {_short(value)})" if isinstance(value, str | int | float | bool) else ""
        parts.append(f"{loc or 'finding'}: {msg}{shown}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _finding_from_dict(obj: dict[str, Any], path: str, line: int, prefix: str = "") -> Item:
    if _is_asff(obj):
        return Malformed(
            path,
            line,
            "a Security Hub (ASFF) finding: unsupported; simulate reads GuardDuty findings "
            "(EventBridge events, bare findings, `aws guardduty get-findings` output, JSON Lines)",
        )
    if _is_pascal_finding(obj):
        obj = pascal_to_camel(obj)
    try:
        return Finding.model_validate(obj)
    except ValidationError as exc:
        fid = obj.get("id")
        which = f"finding {fid}: " if isinstance(fid, str) and len(fid) <= 64 else ""
        return Malformed(
            path, line, f"{which}not a valid GuardDuty finding: {describe_validation_error(exc, prefix)}"
        )


def items_from_value(value: Any, path: str, line: int, *, in_array: bool = False) -> Iterator[Item]:
    """Every finding in one decoded JSON value, whatever its shape (the slow path)."""
    if isinstance(value, list) and not in_array:
        for element in value:
            yield from items_from_value(element, path, line, in_array=True)
        return
    if not isinstance(value, dict):
        yield Malformed(path, line, f"expected a JSON object (a finding or an event), got {_kind(value)}")
        return
    findings = value.get("Findings", value.get("findings"))
    if isinstance(findings, list) and "detail" not in value:
        for element in findings:
            if isinstance(element, dict):
                yield _finding_from_dict(element, path, line)
            else:
                yield Malformed(path, line, f"Findings holds {_kind(element)}, not a finding object")
        return
    if "detail" in value:
        yield _from_event(value, path, line)
        return
    yield _finding_from_dict(value, path, line)


def _from_event(event: dict[str, Any], path: str, line: int) -> Item:
    detail_type = event.get("detail-type")
    if detail_type is not None and detail_type != FINDING_DETAIL_TYPE:
        return Malformed(
            path,
            line,
            f"an EventBridge event of detail-type {_short(detail_type)}, not {FINDING_DETAIL_TYPE!r}",
        )
    source = event.get("source")
    if source is not None and source != GUARDDUTY_SOURCE:
        return Malformed(
            path, line, f"an EventBridge event from source {_short(source)}, not {GUARDDUTY_SOURCE!r}"
        )
    detail = event["detail"]
    if not isinstance(detail, dict):
        return Malformed(path, line, f"the event's detail is {_kind(detail)}, not a finding object")
    return _finding_from_dict(detail, path, line, prefix="detail.")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------
# Readers


class FileReader:
    """Every finding (or malformed entry) in one file, in order; ``-`` reads standard input.

    Iterate it once; ``position()`` says how many bytes of the file have been consumed (for the
    progress bar) without costing anything per line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._fh: IO[bytes] | None = None

    def position(self) -> int:
        if self._fh is None or self._fh.closed:
            return 0
        try:
            return self._fh.tell()
        except OSError:  # a pipe
            return 0

    def __iter__(self) -> Iterator[Item]:
        name = self.name
        if name == STDIN:
            yield from _read_stream(_stdin(), name, json_lines=None)
            return
        try:
            fh = self.path.open("rb", buffering=READ_BUFFER)
        except OSError as exc:
            yield Malformed(name, 0, f"cannot read the file: {exc.strerror}")
            return
        self._fh = fh
        with fh:
            json_lines = True if self.path.suffix.lower() in JSON_LINES_SUFFIXES else None
            try:
                yield from _read_stream(fh, name, json_lines)
            except OSError as exc:
                yield Malformed(name, 0, f"cannot read the file: {exc.strerror}")


def _stdin() -> IO[bytes]:
    try:
        return open(sys.stdin.fileno(), "rb", buffering=READ_BUFFER, closefd=False)
    except (OSError, ValueError):  # no file descriptor (an in-process test runner)
        return sys.stdin.buffer


def read_items(path: Path) -> Iterator[Item]:
    """Every finding (or malformed entry) in one file."""
    return iter(FileReader(path))


def _looks_like_json_line(first: bytes) -> bool:
    """A complete value on the first line means JSON Lines; ``{`` or ``[`` alone, a document."""
    s = first.strip()
    return len(s) > 1 and s[:1] in (b"{", b"[") and s[-1:] in (b"}", b"]")


def _read_stream(fh: IO[bytes], name: str, json_lines: bool | None) -> Iterator[Item]:
    first = fh.readline()
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # PowerShell's `>` writes UTF-16: say so rather than report every line as invalid JSON.
        yield Malformed(name, 1, "UTF-16 text: convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)")
        return
    lineno = 0
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    while True:
        if not first:
            return  # empty file: nothing to read, nothing wrong
        lineno += 1
        if first.strip():
            break
        first = fh.readline()
    if json_lines is None:
        json_lines = _looks_like_json_line(first)
    if json_lines:
        yield from _read_json_lines(itertools.chain((first,), fh), name, lineno)
    else:
        head = b"\n" * (lineno - 1) + first  # keep line numbers right for the decoder
        yield from read_document(head + fh.read(), name)


class _FastEvent(BaseModel):
    """An EventBridge event on the fast path: only what simulate checks (the rest of the envelope
    is the hub's trust check, not the policy's) and the finding."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: Finding


def _read_json_lines(lines: Iterable[bytes], name: str, start: int) -> Iterator[Item]:
    """The hot path: one raw line -> one validated Finding, no Python-level JSON decoding.

    Kept flat on purpose (one generator, no wrapper objects): at tens of thousands of lines a
    second, every layer shows in the profile.
    """
    # The validators themselves: ``model_validate_json`` adds a Python-level call per line.
    validate_finding = Finding.__pydantic_validator__.validate_json
    validate_event = _FastEvent.__pydantic_validator__.validate_json
    lineno = start - 1
    for raw in lines:
        lineno += 1
        try:
            # EventBridge writes ``detail-type`` (and ``detail``, when keys are sorted) within the
            # first 100 bytes; a bare finding has neither there. Anything misrouted by this cheap
            # test still ends on the slow path, which recognises every shape.
            if raw.find(b'"detail', 0, 256) >= 0:
                event = validate_event(raw)
                if event.source != GUARDDUTY_SOURCE or event.detail_type != FINDING_DETAIL_TYPE:
                    raise ValueError("not a finding event")  # the slow path says why
                yield event.detail
            else:
                yield validate_finding(raw)
        except ValueError:  # ValidationError too: any shape the fast path does not take
            if raw.strip():
                yield from _slow_line(raw, name, lineno)


def _slow_line(raw: bytes, name: str, lineno: int) -> Iterator[Item]:
    try:
        value = json.loads(raw)
    except RecursionError:
        yield Malformed(name, lineno, "invalid JSON: nested too deeply")
        return
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        col = getattr(exc, "colno", None)
        where = f" (column {col})" if col else ""
        yield Malformed(name, lineno, f"invalid JSON: {getattr(exc, 'msg', exc)}{where}")
        return
    yield from items_from_value(value, name, lineno)


def read_document(data: bytes | str, name: str) -> Iterator[Item]:
    """One JSON document. Array elements (top level or under ``Findings``) are decoded one at a
    time and reported with the line they start on."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        yield Malformed(name, 1, f"not UTF-8 text: {exc.reason} at byte {exc.start}")
        return
    lines = _LineCounter(text)
    try:
        pos = _ws(text, 0)
        if text.startswith("[", pos):
            array_end = [pos]
            for start, value in _scan_array(text, pos, array_end):
                yield from items_from_value(value, name, lines.at(start), in_array=True)
            _expect_end(text, array_end[0])
        elif text.startswith("{", pos):
            yield from _scan_object(text, pos, name, lines)
        else:
            value, end = _DECODER.raw_decode(text, pos)
            yield from items_from_value(value, name, lines.at(pos))
            _expect_end(text, end)
    except json.JSONDecodeError as exc:
        yield Malformed(name, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        yield Malformed(name, 1, "invalid JSON: nested too deeply")


def _ws(text: str, pos: int) -> int:
    match = _WS_RE.match(text, pos)
    return match.end() if match else pos


def _expect_end(text: str, pos: int) -> None:
    pos = _ws(text, pos)
    if pos != len(text):
        raise json.JSONDecodeError("extra data after the JSON document", text, pos)


def _scan_array(text: str, pos: int, end: list[int] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (start offset, value) for each element of the array at ``pos``; ``end[0]`` is then
    the offset just after the closing bracket."""
    pos = _ws(text, pos + 1)
    if not text.startswith("]", pos):
        while True:
            value, after = _DECODER.raw_decode(text, pos)
            yield pos, value
            pos = _ws(text, after)
            if text.startswith(",", pos):
                pos = _ws(text, pos + 1)
            elif text.startswith("]", pos):
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    if end is not None:
        end[0] = pos + 1


def _scan_object(text: str, start: int, name: str, lines: _LineCounter) -> Iterator[Item]:
    """A top-level object: ``{"Findings": [...]}`` streams its elements; anything else is one
    finding or event, decoded whole."""
    members: dict[str, Any] = {}
    streamed = False
    pos = _ws(text, start + 1)
    if text.startswith("}", pos):
        pos += 1
    else:
        while True:
            if not text.startswith('"', pos):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
            key, pos = scanstring(text, pos + 1)
            pos = _ws(text, pos)
            if not text.startswith(":", pos):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
            pos = _ws(text, pos + 1)
            if key in ("Findings", "findings") and text.startswith("[", pos) and "detail" not in members:
                streamed = True
                end = [pos]
                for elem_start, value in _scan_array(text, pos, end):
                    line = lines.at(elem_start)
                    if isinstance(value, dict):
                        yield _finding_from_dict(value, name, line)
                    else:
                        yield Malformed(name, line, f"Findings holds {_kind(value)}, not a finding object")
                pos = _ws(text, end[0])
            else:
                value, after = _DECODER.raw_decode(text, pos)
                members[key] = value
                pos = _ws(text, after)
            if text.startswith(",", pos):
                pos = _ws(text, pos + 1)
            elif text.startswith("}", pos):
                pos += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    _expect_end(text, pos)
    if not streamed:
        yield from items_from_value(members, name, lines.at(start))


class _LineCounter:
    """Offset -> 1-based line number, for offsets that only grow (one pass over the text)."""

    __slots__ = ("line", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, offset: int) -> int:
        if offset < self.pos:  # rare: restart
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, offset)
        self.pos = offset
        return self.line


# --------------------------------------------------------------------------------------------
# ORG.json


def load_org_map(path: str | Path) -> dict[str, tuple[str, ...]]:
    """``ORG.json``: ``{"<account id>": ["r-root", "ou-...", ...]}``, OUs from the root down."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except OSError as exc:
        raise InputError(f"{p}: cannot read the file: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{p}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected an object mapping account ids to lists of OU ids")
    org: dict[str, tuple[str, ...]] = {}
    for account, ous in data.items():
        if not _ACCOUNT_RE.match(account):
            raise InputError(f"{p}: {account!r} is not a 12-digit account id")
        if not isinstance(ous, list) or not all(isinstance(o, str) for o in ous):
            raise InputError(f"{p}: account {account}: expected a list of OU ids from the root down")
        bad = [o for o in ous if not _ROOT_OR_OU_RE.match(o)]
        if bad:
            raise InputError(
                f"{p}: account {account}: {bad[0]!r} is not an OU id (ou-xxxx-xxxxxxxx) or root id"
            )
        org[account] = tuple(ous)
    return org


# --------------------------------------------------------------------------------------------
# Evaluation and summary


class Outcome(NamedTuple):
    """One finding's simulated decision: the ``--json`` row (a tuple: cheap to make)."""

    finding_id: str
    account_id: str
    region: str
    instance_id: str | None
    type: str
    severity: float
    decision: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(ROW_KEYS, self, strict=True))


def row_json(o: Outcome) -> str:
    """The row as one JSON line, hand-formatted: ``json.dumps`` of a dict costs three times more.

    Strings go through the C string encoder; severity is a finite float (the model refuses NaN
    and infinities), whose ``repr`` is valid JSON.
    """
    return _row_head(o) + _row_tail(o)


def _row_head(o: Outcome) -> str:
    enc = encode_basestring
    return (
        f'{{"finding_id": {enc(o[0])}, "account_id": {enc(o[1])}, "region": {enc(o[2])}, '
        f'"instance_id": {"null" if o[3] is None else enc(o[3])}, '
    )


def _row_tail(o: Outcome) -> str:
    enc = encode_basestring
    return f'"type": {enc(o[4])}, "severity": {o[5]!r}, "decision": {enc(o[6])}, "reason": {enc(o[7])}}}\n'


class RowWriter:
    """An ``on_outcome`` that writes one JSON line per finding (the ``--json`` output).

    Rows repeat a lot across a feed: the account and region part, and the second half (type,
    severity, decision, reason), are formatted once per distinct value and reused; only the
    finding and instance ids are encoded per row. ``simulate`` calls :meth:`row` directly.
    """

    __slots__ = ("_middles", "_tails", "_write")

    def __init__(self, out: io.TextIOBase | IO[str]) -> None:
        self._write = out.write
        self._middles: dict[tuple[str, str], str] = {}
        self._tails: dict[tuple[str, float, str, str], str] = {}

    def __call__(self, o: Outcome) -> None:
        self.row(*o)

    def row(
        self,
        finding_id: str,
        account_id: str,
        region: str,
        instance_id: str | None,
        finding_type: str,
        severity: float,
        decision: str,
        reason: str,
    ) -> None:
        middle = self._middles.get((account_id, region))
        if middle is None:
            enc = encode_basestring
            middle = f', "account_id": {enc(account_id)}, "region": {enc(region)}, "instance_id": '
            if len(self._middles) < 65536:
                self._middles[(account_id, region)] = middle
        key = (finding_type, severity, decision, reason)
        tail = self._tails.get(key)
        if tail is None:
            enc = encode_basestring
            tail = (
                f', "type": {enc(finding_type)}, "severity": {severity!r}, '
                f'"decision": {enc(decision)}, "reason": {enc(reason)}}}\n'
            )
            if len(self._tails) < 65536:
                self._tails[key] = tail
        instance = "null" if instance_id is None else encode_basestring(instance_id)
        self._write(f'{{"finding_id": {encode_basestring(finding_id)}{middle}{instance}{tail}')


@dataclass
class Summary:
    """Tallies over the run, bounded in memory whatever the number of findings.

    One counter keyed by (decision, reason, account, type) is all the hot loop updates; the
    views by decision, reason, account and type are derived from it at the end.
    """

    top: int = 50
    files: int = 0
    findings: int = 0
    malformed: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    would_isolate: int = 0
    counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    # min-heap of (severity, finding id, outcome): the highest-severity ``top`` are kept.
    _isolate_heap: list[tuple[float, str, Outcome]] = field(default_factory=list)
    malformed_examples: list[Malformed] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.findings += 1
        key = (o[6], o[7], o[1], o[4])
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if o[6] == _ISOLATED:
            self.add_isolated(o)

    def add_isolated(self, o: Outcome) -> None:
        self.would_isolate += 1
        entry = (o.severity, o.finding_id, o)
        if len(self._isolate_heap) < self.top:
            heapq.heappush(self._isolate_heap, entry)
        elif entry[:2] > self._isolate_heap[0][:2]:
            heapq.heapreplace(self._isolate_heap, entry)

    def add_malformed(self, item: Malformed) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < self.top:
            self.malformed_examples.append(item)

    def would_isolate_top(self) -> list[Outcome]:
        """The highest-severity findings that would be isolated (at most ``top``), worst first."""
        return [o for _s, _i, o in sorted(self._isolate_heap, key=lambda e: e[:2], reverse=True)]

    @property
    def decisions(self) -> Counter[str]:
        return self._view(lambda k: k[0])

    @property
    def reasons(self) -> Counter[tuple[str, str]]:
        return self._view(lambda k: (k[0], k[1]))

    @property
    def by_account(self) -> dict[str, Counter[str]]:
        return self._group(2)

    @property
    def by_type(self) -> dict[str, Counter[str]]:
        return self._group(3)

    def _view(self, key: Callable[[tuple[str, str, str, str]], _K]) -> Counter[_K]:
        out: Counter[_K] = Counter()
        for k, n in self.counts.items():
            out[key(k)] += n
        return out

    def _group(self, index: int) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for k, n in self.counts.items():
            out.setdefault(k[index], Counter())[k[0]] += n
        return out

    @property
    def rate(self) -> float:
        return self.findings / self.seconds if self.seconds > 0 else 0.0


ProgressFn = Callable[[int], None]


def simulate(
    files: Sequence[Path],
    config: OrgContainConfig,
    org: Mapping[str, Sequence[str]] | None = None,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_malformed: Callable[[Malformed], None] | None = None,
    on_progress: ProgressFn | None = None,
    summary: Summary | None = None,
) -> Summary:
    """Read every finding in ``files`` and decide each with ``hub.policy.decide``.

    ``on_outcome`` sees every decision (the ``--json`` writer), ``on_malformed`` every bad entry,
    ``on_progress`` the bytes read so far (after each file, and every 1024 entries).
    """
    from hub.policy import decide  # the one implementation of the decision

    org_get = (org or {}).get
    writer = on_outcome if type(on_outcome) is RowWriter else None
    summary = summary or Summary()
    counts = summary.counts
    count = counts.get
    findings = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    no_ous: tuple[str, ...] = ()
    done_bytes = 0
    for path in files:
        summary.files += 1
        reader = FileReader(path)
        n = 0
        for item in reader:
            n += 1
            if on_progress is not None and not n & 0x3FF:
                on_progress(done_bytes + reader.position())
            if type(item) is Malformed:
                summary.add_malformed(item)
                if on_malformed is not None:
                    on_malformed(item)
                continue
            f: Finding = item  # type: ignore[assignment]
            # The fields, read once from the model's __dict__: pydantic models define __getattr__,
            # which makes every attribute read on them take a slower path (issue #8's profile).
            fields = f.__dict__
            account = fields["account_id"]
            pd = decide(f, config, org_get(account, no_ous))
            decision, reason, ids = pd.decision, pd.reason, pd.instance_ids
            # The instance the decision is about: the finding's own, or the one instance an
            # attack sequence names (several: none singled out).
            instance = (ids[0] if len(ids) == 1 else None) if ids else f.instance_id
            finding_type = fields["type"]
            # Summary.add, inlined: this loop runs once per finding.
            findings += 1
            key = (decision, reason, account, finding_type)
            counts[key] = count(key, 0) + 1
            if writer is not None:
                # The --json writer, without building an Outcome first (most rows need none).
                fid, region, severity = fields["id"], fields["region"], fields["severity"]
                writer.row(fid, account, region, instance, finding_type, severity, decision, reason)
                if decision == _ISOLATED:
                    summary.add_isolated(
                        Outcome(fid, account, region, instance, finding_type, severity, decision, reason)
                    )
                continue
            outcome = Outcome(
                fields["id"],
                account,
                fields["region"],
                instance,
                finding_type,
                fields["severity"],
                decision,
                reason,
            )
            if decision == _ISOLATED:
                summary.add_isolated(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        if str(path) != STDIN:
            done_bytes += path.stat().st_size
        if on_progress is not None:
            on_progress(done_bytes)
    summary.findings += findings
    summary.bytes_read = done_bytes
    summary.seconds = time.perf_counter() - started
    summary.cpu_seconds = time.process_time() - cpu_started
    return summary


def write_rows(out: io.TextIOBase | IO[str]) -> Callable[[Outcome], None]:
    """An ``on_outcome`` that writes one JSON line per finding to ``out``."""
    return RowWriter(out)
