"""Failover with two standbys and ``number_sync_standbys = 1`` (``make stress``).

The same load and checks as ``tests/test_failover.py``, on three data nodes:
every commit waits for one of the two standbys, so the primary keeps a
synchronous copy even while one standby is away.  The monitor promotes the
standby that has the most WAL; the other follows it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pluginkv import Store

from .ha import HACluster, missing
from .postgres import unavailable
from .test_failover import (
    Replica,
    _healthy,  # noqa: F401  (fixtures, used by name)
    _replicas,  # noqa: F401
    _store,  # noqa: F401
    check_revocation,
    check_store,
    fail_over,
    finish,
    report,
    revoke,
    run_load,
)

pytestmark = pytest.mark.slow


@pytest.fixture(name="cluster", scope="module")
def _cluster() -> Iterator[HACluster]:
    reason = missing()
    if reason is not None:
        unavailable(reason)
    cluster = HACluster.start(standbys=2)
    yield cluster
    cluster.stop()


def test_with_one_of_two_standbys_always_in_sync_a_failover_loses_nothing(
    healthy: HACluster, store: Store, replicas: list[Replica]
) -> None:
    assert healthy.number_sync_standbys() == 1
    names = healthy.synchronous_standby_names()
    assert names.startswith("ANY 1 (") and names.count(",") == 1, names  # one of two
    revoked = revoke(store, replicas)
    load, threads = run_load(replicas)
    try:
        window = fail_over(healthy, replicas, load, warmup=5.0)
        report("failover, two standbys", load, window)
    finally:
        finish(load, threads)
    assert load.wrong == []
    check_store(store, load)
    check_revocation(replicas, revoked)
