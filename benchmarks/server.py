"""moto in server mode, in a child process, listening on 127.0.0.1 only.

The emulated AWS runs in its own process so that its CPU does not share the measured process's
GIL (AWS is remote, after all): round trips then cost what a local HTTP request costs, and the
hub's own threads compete only with each other.

    with MotoServer() as endpoint:   # "http://127.0.0.1:<port>"
        ...
        reset(endpoint)              # POST /moto-api/reset: an empty AWS again
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
import urllib.request
from multiprocessing.connection import Connection
from types import TracebackType


def _serve(conn: Connection) -> None:
    """Child process: start ThreadedMotoServer on 127.0.0.1 (never 0.0.0.0), report its port, wait."""
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    from moto.server import ThreadedMotoServer

    from hub.demo.org import patch_moto

    patch_moto()  # the same moto gaps patched as in-process (EventBridge envelope, delegated admins)
    item_level_transactions()
    serialise_dynamodb()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    conn.send((host, port))
    while conn.recv() == "cpu":  # anything else: stop
        conn.send(time.process_time())
    server.stop()


# moto's DynamoDB is not thread-safe: TransactWriteItems deep-copies the tables (to roll back) while
# the server's other request threads write items, and fails with "dictionary changed size during
# iteration" (HTTP 500). DynamoDB itself is linearisable per item; one lock gives moto the same.
_DYNAMODB_CALLS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
    "query",
    "scan",
)


def item_level_transactions() -> None:
    """Back up the items a TransactWriteItems addresses, not whole tables.

    moto 5 deep-copies every table a transaction touches, once per item, before applying it (to
    roll back on failure): O(table size) per transaction. The ledger grows by a few items per
    finding and takes one transaction per containment, so over a burst of a thousand findings the
    server spent most of its time (and 9 GB) copying the ledger, and the figure measured moto, not
    the hub. Same semantics here: the addressed items are copied, and restored if the transaction
    fails (moto's own rollback then reassigns each table to itself).
    """
    import copy
    from typing import Any

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class _TablesNotCopied:
        """``copy`` as moto's DynamoDB backend module sees it: a Table "copy" is the table."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(obj: Any, memo: Any = None) -> Any:
            return obj if isinstance(obj, Table) else copy.deepcopy(obj, memo)

    models.copy = _TablesNotCopied()  # type: ignore[assignment]
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            attrs = (op.get("Key") or op.get("Item")) if isinstance(op, dict) else None
            if table is None or not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
                continue  # moto refuses it before changing anything
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in attrs:
                    continue
                range_key = DynamoType(attrs[table.range_key_attr])
            saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):  # the first copy of a key wins
                where = table.items if range_key is None else table.items[hash_key]
                key = hash_key if range_key is None else range_key
                if item is None:
                    where.pop(key, None)
                else:
                    where[key] = item
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def serialise_dynamodb() -> None:
    import functools
    import threading
    from typing import Any

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in _DYNAMODB_CALLS:
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))


class MotoServer:
    """Context manager: a moto server in a child process; ``__enter__`` returns its endpoint URL."""

    def __init__(self) -> None:
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.endpoint = ""

    def __enter__(self) -> str:
        ctx = mp.get_context("spawn")  # a clean interpreter: no moto mock of the parent leaks in
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="moto-server")
        self._proc.start()
        if not parent.poll(60):
            raise RuntimeError("the moto server did not start within 60 s")
        host, port = parent.recv()
        self._conn = parent
        self.endpoint = f"http://{host}:{port}"
        assert host == "127.0.0.1", host
        return self.endpoint

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (all its threads)."""
        assert self._conn is not None
        self._conn.send("cpu")
        return float(self._conn.recv())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            self._conn.send("stop")
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)


def reset(endpoint: str) -> None:
    """An empty AWS again (every account, region and service)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
