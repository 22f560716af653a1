"""The harness itself: an injected fault must leave moto's state alone (else a "throttled" call would
have happened anyway and the suite would prove nothing), and the DynamoDB bridge must keep moto's
transaction semantics (a cancelled transaction undoes exactly its own writes) while no concurrent
write is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from hub.demo.org import EmulatedOrg
from hub.ledger import table_definition
from tests.reliability.harness import Faults
from tests.spoke.helpers import aws_error


def _groups(org: EmulatedOrg, account: str, region: str, eni: str) -> list[str]:
    ec2 = org.client("ec2", account, region)
    found = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    return sorted(g["GroupId"] for g in found["Groups"])


@pytest.fixture
def member(aws: None) -> Iterator[tuple[EmulatedOrg, str, str]]:
    org = EmulatedOrg()
    yield org, org.member_ids[0], org.regions[0]


@pytest.mark.parametrize("kind", ["ec2_throttle", "ec2_retried"])
def test_an_injected_ec2_fault_never_reaches_moto(
    member: tuple[EmulatedOrg, str, str], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, account, region = member
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.01)
    work = org.workload(account, region)
    inst = work.run_instance()
    quarantine = work.ec2.create_security_group(GroupName="q", Description="q", VpcId=inst.vpc_id)["GroupId"]
    faults = Faults(org, **{kind: 1.0})  # type: ignore[arg-type]
    creds = org.session(account).get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    ec2 = faults.member_session(
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    ).client("ec2", region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 3}))
    with pytest.raises(ClientError) as failed:
        ec2.modify_network_interface_attribute(NetworkInterfaceId=inst.eni_ids[0], Groups=[quarantine])
    assert failed.value.response["Error"]["Code"] in ("RequestLimitExceeded", "Throttling")
    assert _groups(org, account, region, inst.eni_ids[0]) == sorted(inst.groups)
    if kind == "ec2_retried":  # the first attempt and botocore's 3 retries, each one refused
        assert faults.counts["ec2-throttled-then-retried"] == 4
    faults.off()
    ec2.modify_network_interface_attribute(NetworkInterfaceId=inst.eni_ids[0], Groups=[quarantine])
    assert _groups(org, account, region, inst.eni_ids[0]) == [quarantine]


def test_a_plain_before_send_answer_does_not_stop_moto(member: tuple[EmulatedOrg, str, str]) -> None:
    """Why the harness never answers from a bare before-send hook: moto applies the call anyway."""
    org, account, region = member
    work = org.workload(account, region)
    inst = work.run_instance()
    quarantine = work.ec2.create_security_group(GroupName="q", Description="q", VpcId=inst.vpc_id)["GroupId"]
    ec2 = org.client("ec2", account, region)
    ec2.meta.events.register_first(
        "before-send.ec2.ModifyNetworkInterfaceAttribute", lambda **_: aws_error("RequestLimitExceeded", 503)
    )
    with pytest.raises(ClientError):
        ec2.modify_network_interface_attribute(NetworkInterfaceId=inst.eni_ids[0], Groups=[quarantine])
    assert _groups(org, account, region, inst.eni_ids[0]) == [quarantine]


def _put(key: str) -> dict[str, object]:
    return {"Put": {"TableName": "t", "Item": {"pk": {"S": key}, "sk": {"S": "x"}}}}


def test_a_cancelled_transaction_undoes_its_own_writes_and_no_one_elses(aws: None) -> None:
    org = EmulatedOrg()
    ddb = org.client("dynamodb", org.hub_account_id)
    ddb.create_table(**table_definition("t"))
    ddb.put_item(TableName="t", Item={"pk": {"S": "held"}, "sk": {"S": "x"}, "v": {"S": "before"}})
    ddb.put_item(TableName="t", Item={"pk": {"S": "gate"}, "sk": {"S": "x"}})
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            key = f"w{threading.get_ident()}-{n}"
            ddb.put_item(TableName="t", Item={"pk": {"S": key}, "sk": {"S": "x"}})
            written.append(key)
            n += 1

    def cancelled(n: int) -> None:
        items = [
            _put(f"new-{n}"),
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "held"}, "sk": {"S": "x"}},
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": f"changed-{n}"}},
                }
            },
            {
                "ConditionCheck": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "gate"}, "sk": {"S": "x"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        with pytest.raises(ClientError, match="TransactionCanceled"):
            ddb.transact_write_items(TransactItems=items)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in range(40):
            cancelled(n)
    finally:
        stop.set()
        for t in threads:
            t.join()
    keys = {i["pk"]["S"] for i in ddb.scan(TableName="t")["Items"]}
    assert set(written) <= keys, f"{len(set(written) - keys)} concurrent writes were undone"
    assert not any(k.startswith("new-") for k in keys)
    held = ddb.get_item(TableName="t", Key={"pk": {"S": "held"}, "sk": {"S": "x"}})["Item"]
    assert held["v"]["S"] == "before"
    assert len(written) > 0
