"""The benchmarks keep working: a tiny slice of ``benchmarks/run.py`` end to end, and the round-trip
counting the critical-path figure rests on.

The full figures come from ``python benchmarks/run.py [--quick] [--json]`` (benchmarks/README.md);
these tests only prove that the entry point runs and reports the keys issue #8 asks for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.calls import SWAP, Call, chain_length, round_trips, until_last

ROOT = Path(__file__).resolve().parents[1]


def test_run_prints_one_json_object_with_the_figures_numbers() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--quick",
            "--json",
            "--only",
            "4,5,6",
            "--set",
            "cold_start.repeats=1",
            "--set",
            "hub_cpu.n=50",
            "--set",
            "hub_cpu.repeats=1",
            "--set",
            "simulate.n=300",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # stdout is the JSON object alone; the report went to stderr
    for key in ("import_ratio_vs_boto3", "hub_cpu_ms_per_finding", "simulate_findings_per_s"):
        assert isinstance(result[key], int | float) and result[key] > 0, key
    assert result["simulate_peak_rss_mb"] < 200
    simulated = result["figures"]["simulate"]
    assert simulated["findings"] == 300
    assert sum(simulated["decisions"].values()) + simulated["malformed"] == 300  # every line accounted for
    assert "4. cold start" in proc.stderr and "6. simulate" in proc.stderr
    assert "1. critical path" not in proc.stderr  # --only is honoured: no moto server started


def test_run_refuses_an_unknown_parameter() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--only", "5", "--set", "hub_cpu.nope=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "hub_cpu.n" in proc.stderr


def _call(name: str, start: float, end: float, scope: str = "member") -> Call:
    return Call(start, end, name, scope)


def test_concurrent_calls_count_as_one_round_trip_and_waiting_calls_as_another() -> None:
    calls = [
        _call("dynamodb.BatchGetItem", 0.0, 1.0, "hub"),
        _call("ec2.DescribeInstances", 0.1, 1.1),  # in flight with the one above: same round trip
        _call("dynamodb.TransactWriteItems", 1.2, 2.0, "hub"),
        _call(SWAP, 2.1, 3.0),
        _call(SWAP, 2.15, 3.05),  # a second ENI, swapped concurrently
        _call(SWAP, 3.1, 4.0),
        _call("sns.Publish", 3.2, 4.5, "hub"),  # after isolation: not on the critical path
    ]
    path = until_last(calls)
    assert [c.name for c in path][-1] == SWAP and "sns.Publish" not in [c.name for c in path]
    assert chain_length(path) == 4
    assert round_trips(path) == [
        ["dynamodb.BatchGetItem", "ec2.DescribeInstances"],
        ["dynamodb.TransactWriteItems"],
        [SWAP, SWAP],
        [SWAP],
    ]


def test_sequential_calls_each_count_as_a_round_trip() -> None:
    calls = [_call(SWAP, float(i), i + 0.9) for i in range(3)]
    assert chain_length(calls) == 3


def test_benchmark_moto_server_still_rolls_back_a_cancelled_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The burst's moto server backs up only the items a transaction touches (benchmarks/server.py);
    a cancelled transaction must still leave every item as it was."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    from benchmarks.server import item_level_transactions
    from hub.ledger import table_definition

    # Undone after the test: the patch is for the benchmark's server process only.
    monkeypatch.setattr(models, "copy", models.copy)
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items)
    item_level_transactions()
    key_a = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**table_definition("ledger"))
        ddb.put_item(TableName="ledger", Item={**key_a, "v": {"N": "1"}})
        update_a = {
            "Update": {
                "TableName": "ledger",
                "Key": key_a,
                "UpdateExpression": "SET v = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            }
        }
        put_b = {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}}
        missing = {
            "ConditionCheck": {
                "TableName": "ledger",
                "Key": {"pk": {"S": "nope"}, "sk": {"S": "1"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        try:
            ddb.transact_write_items(TransactItems=[update_a, put_b, missing])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "TransactionCanceledException"
        else:
            raise AssertionError("the transaction should have been cancelled")
        assert ddb.scan(TableName="ledger")["Items"] == [{**key_a, "v": {"N": "1"}}]
        ddb.transact_write_items(TransactItems=[update_a, put_b])
        items = sorted(ddb.scan(TableName="ledger")["Items"], key=lambda i: i["pk"]["S"])
        assert [i["pk"]["S"] for i in items] == ["a", "b"] and items[0]["v"] == {"N": "2"}
