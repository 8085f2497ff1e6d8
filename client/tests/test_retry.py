"""The retry policy as a table, and the retry loop against a scripted transport (no server)."""

from __future__ import annotations

import httpx
import pytest
from akidb_client import AkiDB, AsyncAkiDB, BadRequest, ConnectionFailed, NotFound, RetryPolicy, Unavailable
from akidb_client._retry import parse_retry_after

POLICY = RetryPolicy(max_attempts=4, budget_s=10, backoff_s=0.1, max_backoff_s=1)


@pytest.mark.parametrize(
    ("status", "idempotent", "connect_failed", "retry_after", "attempt", "elapsed", "expected"),
    [
        (503, False, False, None, 0, 0, 0.1),  # not processed: retried even for a create
        (429, False, False, "2", 0, 0, 2.0),  # Retry-After wins over backoff
        (503, True, False, None, 2, 0, 0.4),  # doubling
        (503, True, False, None, 3, 0, None),  # out of attempts
        (503, True, False, "9", 0, 5, None),  # the wait would overrun the budget
        (502, True, False, None, 0, 0, 0.1),  # a read may be resent after a worker failure
        (502, False, False, None, 0, 0, None),  # a create may have happened: not resent
        (504, False, False, None, 0, 0, None),
        (400, True, False, None, 0, 0, None),
        (404, True, False, None, 0, 0, None),
        (500, True, False, None, 0, 0, None),
        (None, False, True, None, 0, 0, 0.1),  # never reached the server: safe for anything
        (None, False, False, None, 0, 0, None),  # a reset mid-request: only idempotent calls
        (None, True, False, None, 1, 0, 0.2),
    ],
)
def test_policy(status, idempotent, connect_failed, retry_after, attempt, elapsed, expected) -> None:  # type: ignore[no-untyped-def]
    got = POLICY.delay(
        attempt=attempt,
        elapsed_s=elapsed,
        idempotent=idempotent,
        status=status,
        connect_failed=connect_failed,
        retry_after=retry_after,
    )
    assert got == expected


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def scripted(*answers: int | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers each request with the next status (or raises the next exception)."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer >= 400:
            code = {404: "collection_not_found", 503: "no_worker", 400: "invalid_input"}.get(answer, "x")
            body = {"error": {"code": code, "message": f"status {answer}"}}
            return httpx.Response(answer, json=body, headers={"Retry-After": "0"})
        return httpx.Response(answer, json={"status": "ok", "workers": 1})

    return httpx.MockTransport(handle), seen


FAST = RetryPolicy(max_attempts=3, budget_s=5, backoff_s=0.0)


def test_503_is_retried_then_succeeds() -> None:
    transport, seen = scripted(503, 503, 200)
    with AkiDB("http://x", transport=transport, retry=FAST) as db:
        assert db.health().workers == 1
    assert len(seen) == 3


def test_503_past_the_budget_is_unavailable_with_the_server_code() -> None:
    transport, seen = scripted(503, 503, 503)
    with AkiDB("http://x", transport=transport, retry=FAST) as db, pytest.raises(Unavailable) as err:
        db.health()
    assert (err.value.code, err.value.status, err.value.message) == ("no_worker", 503, "status 503")
    assert len(seen) == 3


def test_a_reset_is_retried_for_a_read_but_not_for_a_create() -> None:
    transport, seen = scripted(httpx.ReadError("reset"), 200)
    with AkiDB("http://x", transport=transport, retry=FAST) as db:
        db.health()
    assert len(seen) == 2
    transport, seen = scripted(httpx.ReadError("reset"), 200)
    with AkiDB("http://x", transport=transport, retry=FAST) as db, pytest.raises(ConnectionFailed):
        db.collections.create("x")
    assert len(seen) == 1


def test_a_404_is_not_found_and_not_retried() -> None:
    transport, seen = scripted(404)
    with AkiDB("http://x", transport=transport, retry=FAST) as db, pytest.raises(NotFound) as err:
        db.collections.get("nope")
    assert err.value.code == "collection_not_found"
    assert len(seen) == 1


def test_api_key_is_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    transport, seen = scripted(200, 200)
    with AkiDB("http://x", api_key="k1", transport=transport) as db:
        db.health()
    monkeypatch.setenv("AKIDB_API_KEY", "k2")
    with AkiDB("http://x", transport=transport) as db:
        db.health()
    assert [r.headers["Authorization"] for r in seen] == ["Bearer k1", "Bearer k2"]


def test_ids_are_quoted_as_one_path_segment() -> None:
    transport, seen = scripted(404)
    with AkiDB("http://x", transport=transport) as db, pytest.raises(NotFound):
        db.collection("c").get("a b?c#d%")
    assert seen[0].url.raw_path == b"/collections/c/documents/a%20b%3Fc%23d%25"


async def test_async_client_retries_the_same_way() -> None:
    seen: list[httpx.Request] = []
    queue = [503, 400]

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = queue.pop(0)
        return httpx.Response(status, json={"error": {"code": "invalid_input", "message": "m"}})

    async with AsyncAkiDB("http://x", transport=httpx.MockTransport(handle), retry=FAST) as db:
        with pytest.raises(BadRequest) as err:
            await db.collection("c").search("q")
    assert err.value.code == "invalid_input" and len(seen) == 2


def two_gateways(
    first: list[int | Exception], second: list[int | Exception]
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """Gateways a and b, each answering from its own script; `seen` holds every request in order."""
    seen: list[httpx.Request] = []
    scripts = {"a": list(first), "b": list(second)}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = scripts[request.url.host].pop(0)
        if isinstance(answer, Exception):
            raise answer
        body = (
            {"error": {"code": "draining", "message": "m"}}
            if answer >= 400
            else {"status": "ok", "workers": 1, "documents": []}
        )
        return httpx.Response(answer, json=body)

    return httpx.MockTransport(handle), seen


SLOW = RetryPolicy(max_attempts=4, budget_s=5, backoff_s=60.0)  # a backoff would overrun the budget


def test_a_refused_connection_moves_to_the_next_gateway_at_once_and_stays_there() -> None:
    transport, seen = two_gateways([httpx.ConnectError("refused")], [200, 200])
    with AkiDB("http://a,http://b", transport=transport, retry=SLOW) as db:
        assert db.url == "http://a,http://b"
        db.health()  # no backoff before trying b: the budget could not hold one
        db.health()
    assert [r.url.host for r in seen] == ["a", "b", "b"]


def test_a_503_moves_on_and_an_upsert_with_ids_is_resent_there() -> None:
    transport, seen = two_gateways([503], [200])
    with AkiDB(["http://a", "http://b"], transport=transport, retry=SLOW) as db:
        db.health()
    assert [r.url.host for r in seen] == ["a", "b"]
    transport, seen = two_gateways([httpx.ReadError("reset")], [200])
    with AkiDB(["http://a", "http://b"], transport=transport, retry=SLOW) as db:
        db.collection("c").upsert([{"id": "1", "vector": [1.0]}])
    assert [r.url.host for r in seen] == ["a", "b"]


def test_a_create_cut_off_mid_request_is_not_resent_but_the_next_call_goes_elsewhere() -> None:
    transport, seen = two_gateways([httpx.ReadError("reset")], [200])
    with AkiDB("http://a,http://b", transport=transport, retry=SLOW) as db:
        with pytest.raises(ConnectionFailed, match="http://a/collections"):
            db.collections.create("x")
        db.health()
    assert [r.url.host for r in seen] == ["a", "b"]


def test_when_every_gateway_fails_the_backoff_applies_again() -> None:
    transport, seen = two_gateways([503, 503], [503, 200])
    with AkiDB("http://a,http://b", transport=transport, retry=RetryPolicy(max_attempts=4, backoff_s=0.0)) as db:
        db.health()
    assert [r.url.host for r in seen] == ["a", "b", "a", "b"]


def test_akidb_url_may_name_several_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKIDB_URL", " http://a/ , http://b ")
    transport, _ = two_gateways([httpx.ConnectError("refused")], [200])
    with AkiDB(transport=transport, retry=SLOW) as db:
        db.health()
    assert db.gateways.urls == ("http://a", "http://b")
    with pytest.raises(ValueError, match="no gateway URL"):
        AkiDB(" , ")


async def test_the_async_client_fails_over_the_same_way() -> None:
    transport, seen = two_gateways([httpx.ConnectError("refused")], [200])
    async_transport = httpx.MockTransport(transport.handler)  # type: ignore[arg-type]
    async with AsyncAkiDB("http://a,http://b", transport=async_transport, retry=SLOW) as db:
        await db.health()
    assert [r.url.host for r in seen] == ["a", "b"]


def test_another_gateway_needs_no_wait_but_the_same_rules() -> None:
    def delay(**kw: object) -> float | None:
        args: dict[str, object] = {"attempt": 0, "elapsed_s": 0.0, "idempotent": True, "elsewhere": True, **kw}
        return SLOW.delay(**args)  # type: ignore[arg-type]

    assert delay(status=503) == 0.0
    assert delay(status=None, connect_failed=True, idempotent=False) == 0.0
    assert delay(status=None, idempotent=False) is None  # a create that may have arrived: never resent
    assert delay(status=400) is None
    assert delay(status=503, attempt=3) is None  # the attempt limit still holds
