"""How long the clients keep retrying a safe request, and what a Retry-After changes."""

from __future__ import annotations

from unittest import mock

from tenacity import RetryCallState

from pluginkv import BackendUnavailable
from pluginkv.client._changes import Reconnects
from pluginkv.client._wire import (
    DEFAULT_RETRIES,
    RETRY_JITTER,
    RETRY_MAX_WAIT,
    Retryable,
    retry_after,
    retry_wait,
)


def _state(attempt: int, failure: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=mock.Mock(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(failure), failure, None))
    return state


def test_the_default_retries_keep_trying_longer_than_a_measured_failover() -> None:
    # docs/benchmarks.md: about 10 s from the primary's death to the first write.
    outage = BackendUnavailable("failing over")
    waited = sum(retry_wait(_state(n, Retryable(outage))) for n in range(1, DEFAULT_RETRIES + 1))
    assert waited >= 25


def test_a_retry_after_longer_than_the_backoff_is_waited_out() -> None:
    failure = Retryable(BackendUnavailable("restarting"), retry_after=3.0)
    assert retry_wait(_state(1, failure)) >= 3.0
    assert retry_wait(_state(1, Retryable(BackendUnavailable("blip")))) < 1.0


def test_retry_after_is_read_in_seconds_and_capped() -> None:
    assert retry_after({"Retry-After": "1"}.get) == 1.0
    assert retry_after({"Retry-After": "86400"}.get) == 30.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}.get) is None
    assert retry_after({}.get) is None


def test_a_watch_tries_again_past_any_number_of_failures_at_a_capped_wait() -> None:
    reconnects = Reconnects("http://127.0.0.1:8787")
    outage = Retryable(BackendUnavailable("restarting"))
    waits = [reconnects.failed(outage) for _ in range(10 * DEFAULT_RETRIES)]
    assert waits[0] < 1.0
    assert RETRY_MAX_WAIT <= waits[-1] <= RETRY_MAX_WAIT + RETRY_JITTER
    assert reconnects.failed(Retryable(BackendUnavailable("busy"), retry_after=20.0)) >= 20.0
    reconnects.answered()  # the service is back: the next outage starts from a short wait
    assert reconnects.failed(outage) < 1.0
