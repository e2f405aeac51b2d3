from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import redis
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.lti.ags import (
    CT_LINEITEM,
    CT_LINEITEM_CONTAINER,
    CT_SCORE,
    SCOPE_LINEITEM,
    SCOPE_RESULT_READONLY,
    SCOPE_SCORE,
    ActivityProgress,
    AgsClient,
    AgsRejectedError,
    AgsUnavailableError,
    GradingProgress,
    LineItemGoneError,
    PlatformCredentials,
    Score,
    ScoreOutcome,
    scores_url,
    usable_scopes,
    with_query,
)
from lti_proctor.store import DatabaseStore, RedisStore, SharedStore, get_store
from tests.constants import REDIS_URL
from tests.fakes.ags import CanvasFake, FakeLms, MoodleFake, OpenEdxFake
from tests.services import redis_available

KID = "tool-key-2030-05"
T0 = datetime(2030, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
LABEL = "Proctoring: Final exam (proctored)"


@pytest.fixture(scope="module")
def tool_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def signer(tool_key: RSAPrivateKey) -> Callable[[], tuple[str, RSAPrivateKey]]:
    return lambda: (KID, tool_key)


@pytest.fixture
def store(app: Flask) -> SharedStore:
    """The app's shared store: the database store on SQLite, Redis on the PostgreSQL run."""
    with app.app_context():
        return get_store()


@pytest.fixture(params=["moodle", "canvas"])
def lms(
    request: pytest.FixtureRequest, http: responses.RequestsMock, tool_key: RSAPrivateKey
) -> FakeLms:
    fake_class = MoodleFake if request.param == "moodle" else CanvasFake
    return fake_class(public_key=tool_key.public_key(), kid=KID).install(http)


def credentials_for(lms: FakeLms, **overrides: str) -> PlatformCredentials:
    fields = {"id": f"platform-{type(lms).__name__}", "client_id": lms.client_id}
    fields.update({"token_url": lms.token_url, **overrides})
    return PlatformCredentials(**fields)


@pytest.fixture
def make_client(
    lms: FakeLms, store: SharedStore, signer: Callable[[], tuple[str, RSAPrivateKey]]
) -> Callable[[], AgsClient]:
    return lambda: AgsClient(credentials_for(lms), store=store, signer=signer, timeout=2)


@pytest.fixture
def ags(make_client: Callable[[], AgsClient]) -> AgsClient:
    return make_client()


def link_of(lms: FakeLms) -> str:
    return next(iter(lms.resource_links))


def student_of(lms: FakeLms) -> str:
    return next(iter(lms.students))


def line_item(ags: AgsClient, lms: FakeLms) -> str:
    return ags.find_or_create_line_item(
        lms.lineitems_url, resource_link_id=link_of(lms), label=LABEL, score_maximum=100
    )


def a_score(user: str, at: datetime, state: str = "started") -> Score:
    progress = {
        "started": (ActivityProgress.STARTED, GradingProgress.PENDING, None),
        "finished": (ActivityProgress.COMPLETED, GradingProgress.PENDING, None),
        "reported": (ActivityProgress.COMPLETED, GradingProgress.FULLY_GRADED, 77.0),
    }[state]
    return Score(
        user_id=user,
        activity_progress=progress[0],
        grading_progress=progress[1],
        timestamp=at,
        score_given=progress[2],
        score_maximum=None if progress[2] is None else 100.0,
        comment=f"Proctoring: {state}.",
    )


def posts_to(lms: FakeLms, path_part: str) -> list[str]:
    return [url for method, url in lms.service_requests if method == "POST" and path_part in url]


# --- line items ----------------------------------------------------------------------------------


def test_line_item_is_created_once_then_found(ags: AgsClient, lms: FakeLms) -> None:
    first = line_item(ags, lms)
    second = line_item(ags, lms)

    assert first == second
    created = lms.items_tagged("proctoring")
    assert len(created) == 1
    assert created[0]["id"] == first
    assert (created[0]["label"], created[0]["scoreMaximum"]) == (LABEL, 100)
    assert created[0]["resourceLinkId"] == link_of(lms)
    assert len([u for u in posts_to(lms, "") if "/scores" not in u]) == 1
    assert len(lms.line_items) == 2  # the assignment's own column is left alone


def test_existing_proctoring_line_item_is_found_without_creating(
    ags: AgsClient, lms: FakeLms
) -> None:
    existing = lms.add_line_item(
        label=LABEL, scoreMaximum=100, tag="proctoring", resourceLinkId=link_of(lms)
    )

    assert line_item(ags, lms) == existing["id"]
    assert posts_to(lms, "") == []


def test_line_item_lookup_adds_filters_and_keeps_the_platform_query(
    ags: AgsClient, lms: FakeLms
) -> None:
    line_item(ags, lms)

    get_url = next(url for method, url in lms.service_requests if method == "GET")
    query = parse_qs(urlsplit(get_url).query)
    assert query["resource_link_id"] == [link_of(lms)]
    assert query["tag"] == ["proctoring"]
    original = parse_qs(urlsplit(lms.lineitems_url).query)
    assert all(query[key] == value for key, value in original.items())  # Moodle's type_id=1


def test_line_item_requests_use_the_ags_content_types(
    ags: AgsClient, lms: FakeLms, http: responses.RequestsMock
) -> None:
    line_item(ags, lms)

    service_calls = [c.request for c in http.calls if "token" not in str(c.request.url)]
    get = next(r for r in service_calls if r.method == "GET")
    (post,) = [r for r in service_calls if r.method == "POST"]
    assert get.headers["Accept"] == CT_LINEITEM_CONTAINER
    assert post.headers["Content-Type"] == CT_LINEITEM
    assert post.headers["Accept"] == CT_LINEITEM


def test_line_item_for_unknown_resource_link_is_rejected(ags: AgsClient, lms: FakeLms) -> None:
    with pytest.raises(AgsRejectedError) as caught:
        ags.find_or_create_line_item(
            lms.lineitems_url, resource_link_id="not-a-link", label=LABEL, score_maximum=100
        )
    assert caught.value.status == 403
    assert not caught.value.retryable


def test_line_item_label_keeps_non_ascii_exam_names(ags: AgsClient, lms: FakeLms) -> None:
    label = "Proctoring: Қорытынды емтихан (итоговый экзамен)"
    ags.find_or_create_line_item(
        lms.lineitems_url, resource_link_id=link_of(lms), label=label, score_maximum=100
    )

    assert lms.items_tagged("proctoring")[0]["label"] == label


def test_concurrent_workers_create_one_line_item(
    make_client: Callable[[], AgsClient], lms: FakeLms
) -> None:
    clients = [make_client() for _ in range(4)]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(line_item(c, lms))) for c in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(results)) == 1 and len(results) == 4
    assert len(lms.items_tagged("proctoring")) == 1


# --- scores ---------------------------------------------------------------------------------


def test_scores_for_start_finish_and_report_arrive_in_order(ags: AgsClient, lms: FakeLms) -> None:
    item, user = line_item(ags, lms), student_of(lms)

    outcomes = [
        ags.post_score(item, a_score(user, T0, "started")),
        ags.post_score(item, a_score(user, T0 + timedelta(minutes=50), "finished")),
        ags.post_score(item, a_score(user, T0 + timedelta(minutes=55), "reported")),
    ]

    assert outcomes == [ScoreOutcome.ACCEPTED] * 3
    shown = lms.latest_score(item, user)
    assert shown is not None
    assert (shown["activityProgress"], shown["gradingProgress"]) == ("Completed", "FullyGraded")
    assert shown["scoreGiven"] == 77.0


@pytest.mark.parametrize(
    ("newer", "older"), [("reported", "finished"), ("finished", "started"), ("reported", "started")]
)
def test_older_score_arriving_late_does_not_overwrite(
    ags: AgsClient, lms: FakeLms, newer: str, older: str
) -> None:
    item, user = line_item(ags, lms), student_of(lms)
    ags.post_score(item, a_score(user, T0 + timedelta(minutes=55), newer))

    outcome = ags.post_score(item, a_score(user, T0, older))

    assert outcome == ScoreOutcome.SUPERSEDED
    shown = lms.latest_score(item, user)
    assert shown is not None and shown["comment"] == f"Proctoring: {newer}."


@pytest.fixture
def openedx(http: responses.RequestsMock, tool_key: RSAPrivateKey) -> FakeLms:
    return OpenEdxFake(public_key=tool_key.public_key(), kid=KID).install(http)


@pytest.fixture
def openedx_ags(
    openedx: FakeLms, store: SharedStore, signer: Callable[[], tuple[str, RSAPrivateKey]]
) -> AgsClient:
    return AgsClient(credentials_for(openedx), store=store, signer=signer, timeout=2)


def test_open_edx_repeated_score_is_already_applied_not_an_error(
    openedx_ags: AgsClient, openedx: FakeLms
) -> None:
    item, user = line_item(openedx_ags, openedx), student_of(openedx)
    assert openedx_ags.post_score(item, a_score(user, T0, "finished")) == ScoreOutcome.ACCEPTED

    again = openedx_ags.post_score(item, a_score(user, T0, "finished"))

    assert again == ScoreOutcome.ALREADY_APPLIED
    assert len(openedx.scores[(item, user)]) == 1


def test_open_edx_older_score_is_superseded_not_an_error(
    openedx_ags: AgsClient, openedx: FakeLms
) -> None:
    item, user = line_item(openedx_ags, openedx), student_of(openedx)
    openedx_ags.post_score(item, a_score(user, T0 + timedelta(minutes=55), "reported"))

    outcome = openedx_ags.post_score(item, a_score(user, T0, "started"))

    assert outcome == ScoreOutcome.SUPERSEDED
    shown = openedx.latest_score(item, user)
    assert shown is not None and shown["comment"] == "Proctoring: reported."


def test_open_edx_other_400_is_still_rejected(openedx_ags: AgsClient, openedx: FakeLms) -> None:
    item = line_item(openedx_ags, openedx)
    openedx.fail_next(400, body=json.dumps({"user_id": ["This field is required."]}))

    with pytest.raises(AgsRejectedError) as caught:
        openedx_ags.post_score(item, a_score(student_of(openedx), T0))

    assert "This field is required." in str(caught.value)


def test_score_goes_to_scores_before_the_query_with_the_score_content_type(
    ags: AgsClient, lms: FakeLms, http: responses.RequestsMock
) -> None:
    item = line_item(ags, lms)
    ags.post_score(item, a_score(student_of(lms), T0))

    sent = http.calls[-1].request
    parts, item_parts = urlsplit(str(sent.url)), urlsplit(item)
    assert parts.path == item_parts.path + "/scores"
    assert parts.query == item_parts.query  # Moodle: ?type_id=1 after /scores
    assert sent.headers["Content-Type"] == CT_SCORE
    assert json.loads(sent.body or b"")["timestamp"] == "2030-05-01T12:00:00.250+00:00"


def test_score_url_shapes_of_moodle_and_canvas() -> None:
    moodle = "https://moodle.example.edu/mod/lti/services.php/2/lineitems/7/lineitem?type_id=1"
    canvas = "https://school.instructure.com/api/lti/courses/1/line_items/1"
    assert scores_url(moodle) == (
        "https://moodle.example.edu/mod/lti/services.php/2/lineitems/7/lineitem/scores?type_id=1"
    )
    assert scores_url(canvas) == canvas + "/scores"


def test_lms_answering_500_is_retryable_and_the_retry_succeeds(
    ags: AgsClient, lms: FakeLms
) -> None:
    item, user = line_item(ags, lms), student_of(lms)
    lms.fail_next(500, body="<html>Internal Server Error</html>")

    with pytest.raises(AgsUnavailableError) as caught:
        ags.post_score(item, a_score(user, T0))
    assert caught.value.retryable and caught.value.status == 500

    assert ags.post_score(item, a_score(user, T0)) == ScoreOutcome.ACCEPTED
    assert lms.latest_score(item, user) is not None


def test_expired_token_is_replaced_once_with_a_fresh_one(ags: AgsClient, lms: FakeLms) -> None:
    item, user = line_item(ags, lms), student_of(lms)
    lms.expire_tokens()

    assert ags.post_score(item, a_score(user, T0)) == ScoreOutcome.ACCEPTED
    assert len(lms.token_requests) == 2


def test_401_with_a_fresh_token_too_is_rejected(ags: AgsClient, lms: FakeLms) -> None:
    item = line_item(ags, lms)
    lms.fail_next(401, times=2)

    with pytest.raises(AgsRejectedError) as caught:
        ags.post_score(item, a_score(student_of(lms), T0))
    assert caught.value.status == 401
    assert len(lms.token_requests) == 2


@pytest.mark.parametrize("retry_after", ["7", "date"])
def test_429_carries_retry_after(ags: AgsClient, lms: FakeLms, retry_after: str) -> None:
    item = line_item(ags, lms)
    value = retry_after
    if retry_after == "date":
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    lms.fail_next(429, headers={"Retry-After": value})

    with pytest.raises(AgsUnavailableError) as caught:
        ags.post_score(item, a_score(student_of(lms), T0))
    assert caught.value.status == 429
    assert caught.value.retry_after_s is not None
    assert (
        (caught.value.retry_after_s == 7)
        if retry_after == "7"
        else (25 < caught.value.retry_after_s <= 30)
    )


def test_user_not_enrolled_is_rejected_with_the_lms_answer(ags: AgsClient, lms: FakeLms) -> None:
    item = line_item(ags, lms)

    with pytest.raises(AgsRejectedError) as caught:
        ags.post_score(item, a_score("someone-who-left", T0))

    expected = {
        MoodleFake: (400, "Incorrect score received"),
        CanvasFake: (422, "User not found in course or is not a student"),
    }[type(lms)]
    assert (caught.value.status, caught.value.lms_answer) == expected
    assert expected[1] in str(caught.value)
    assert not caught.value.retryable
    assert not isinstance(caught.value, LineItemGoneError)


def test_deleted_line_item_is_gone_and_can_be_created_again(ags: AgsClient, lms: FakeLms) -> None:
    item, user = line_item(ags, lms), student_of(lms)
    lms.delete_line_item(item)

    with pytest.raises(LineItemGoneError) as caught:
        ags.post_score(item, a_score(user, T0))
    assert caught.value.status == 404 and not caught.value.retryable

    again = line_item(ags, lms)
    assert again != item
    assert ags.post_score(again, a_score(user, T0)) == ScoreOutcome.ACCEPTED


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectTimeout("connect"),
        requests.ReadTimeout("read"),
        requests.ConnectionError("refused"),
    ],
)
def test_timeouts_and_connection_errors_are_retryable(
    ags: AgsClient, lms: FakeLms, failure: Exception
) -> None:
    item = line_item(ags, lms)
    lms.break_next(failure)

    with pytest.raises(AgsUnavailableError) as caught:
        ags.post_score(item, a_score(student_of(lms), T0))
    assert caught.value.retryable and caught.value.status is None


# --- access tokens --------------------------------------------------------------------------


def test_hundred_scores_need_one_token(ags: AgsClient, lms: FakeLms) -> None:
    item, user = line_item(ags, lms), student_of(lms)
    for i in range(100):
        ags.post_score(item, a_score(user, T0 + timedelta(seconds=i)))

    assert len(lms.token_requests) == 1
    assert len(lms.scores[(item, user)]) == 100


def test_two_clients_sharing_the_store_need_one_token(
    make_client: Callable[[], AgsClient], lms: FakeLms
) -> None:
    first, second = make_client(), make_client()
    item, user = line_item(first, lms), student_of(lms)
    for i in range(50):
        first.post_score(item, a_score(user, T0 + timedelta(seconds=2 * i)))
        second.post_score(item, a_score(user, T0 + timedelta(seconds=2 * i + 1)))

    assert len(lms.token_requests) == 1


def test_workers_asking_at_once_share_one_token_request(
    make_client: Callable[[], AgsClient], lms: FakeLms
) -> None:
    lms.token_delay_s = 0.3
    clients = [make_client() for _ in range(6)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda c=c: tokens.append(c.tokens.get())) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 6 and len(set(tokens)) == 1
    assert len(lms.token_requests) == 1


def test_token_request_is_a_signed_client_credentials_grant(
    ags: AgsClient, lms: FakeLms, http: responses.RequestsMock, tool_key: RSAPrivateKey
) -> None:
    line_item(ags, lms)
    lms.expire_tokens()
    line_item(ags, lms)

    first, second = lms.token_requests
    sent = next(c.request for c in http.calls if c.request.url == lms.token_url)
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert first.form["grant_type"] == "client_credentials"
    assert first.form["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert first.form["scope"] == " ".join(sorted({SCOPE_LINEITEM, SCOPE_SCORE}))
    # The fake verified the signature with the tool's public key; check what it holds too.
    claims = jwt.decode(
        first.form["client_assertion"],
        tool_key.public_key(),
        algorithms=["RS256"],
        audience=lms.token_url,
    )
    assert claims["iss"] == claims["sub"] == lms.client_id
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert abs(claims["iat"] - time.time()) < 5
    assert first.header == {"alg": "RS256", "typ": "JWT", "kid": KID}
    assert first.claims["jti"] != second.claims["jti"]


def test_token_is_refetched_after_its_lifetime(ags: AgsClient, lms: FakeLms) -> None:
    lms.token_lifetime_s = 1
    item, user = line_item(ags, lms), student_of(lms)
    ags.post_score(item, a_score(user, T0))
    assert len(lms.token_requests) == 1

    time.sleep(1.0)  # cached for 0.9 s, shortly before expires_in
    ags.post_score(item, a_score(user, T0 + timedelta(seconds=5)))
    assert len(lms.token_requests) == 2


@pytest.mark.parametrize("kind", ["database", "redis"])
def test_token_cache_works_on_each_store_kind(
    kind: str,
    app: Flask,
    lms: FakeLms,
    signer: Callable[[], tuple[str, RSAPrivateKey]],
) -> None:
    if kind == "redis":
        if not redis_available():
            pytest.skip(f"Redis not reachable at {REDIS_URL}: Redis store run skipped")
        shared: SharedStore = RedisStore(REDIS_URL, prefix=f"lp-test:{uuid.uuid4().hex}:")
    else:
        with app.app_context():
            shared = DatabaseStore(db.engine)
    clients = [
        AgsClient(credentials_for(lms), store=shared, signer=signer, timeout=2) for _ in range(2)
    ]
    try:
        item = line_item(clients[0], lms)
        for i, client in enumerate(clients * 3):
            client.post_score(item, a_score(student_of(lms), T0 + timedelta(seconds=i)))
    finally:
        if isinstance(shared, RedisStore):
            shared._r.close()

    assert len(lms.token_requests) == 1


def test_token_cache_is_per_platform_and_scope_set(
    lms: FakeLms, store: SharedStore, signer: Callable[[], tuple[str, RSAPrivateKey]]
) -> None:
    both = AgsClient(credentials_for(lms), store=store, signer=signer)
    score_only = AgsClient(credentials_for(lms), store=store, signer=signer, scopes=[SCOPE_SCORE])
    other_platform = AgsClient(credentials_for(lms, id="other"), store=store, signer=signer)

    tokens = {both.tokens.get(), score_only.tokens.get(), other_platform.tokens.get()}

    assert len(tokens) == 3 and len(lms.token_requests) == 3
    assert lms.token_requests[1].form["scope"] == SCOPE_SCORE


@pytest.mark.parametrize(
    ("change", "error"),
    [("wrong_kid", "invalid_client"), ("wrong_client", "invalid_client"), ("bad_scope", None)],
)
def test_token_endpoint_refusal_is_rejected(
    lms: FakeLms,
    store: SharedStore,
    tool_key: RSAPrivateKey,
    change: str,
    error: str | None,
) -> None:
    creds, kid, scopes = credentials_for(lms), KID, [SCOPE_LINEITEM, SCOPE_SCORE]
    if change == "wrong_kid":
        kid = "retired-key"
    elif change == "wrong_client":
        creds = credentials_for(lms, client_id="someone-else")
    else:
        scopes = ["https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"]
    client = AgsClient(creds, store=store, signer=lambda: (kid, tool_key), scopes=scopes)

    with pytest.raises(AgsRejectedError) as caught:
        client.tokens.get()
    assert caught.value.status == 400
    assert caught.value.lms_answer == (error or "invalid_scope")


def test_canvas_refuses_a_scope_missing_from_the_developer_key_but_moodle_narrows_it(
    lms: FakeLms, store: SharedStore, signer: Callable[[], tuple[str, RSAPrivateKey]]
) -> None:
    wanted = [SCOPE_SCORE, SCOPE_RESULT_READONLY]
    client = AgsClient(credentials_for(lms), store=store, signer=signer, scopes=wanted)
    if isinstance(lms, CanvasFake):
        with pytest.raises(AgsRejectedError):
            client.tokens.get()
    else:
        assert client.tokens.get()


def test_token_endpoint_down_is_retryable(
    lms: FakeLms,
    store: SharedStore,
    signer: Callable[[], tuple[str, RSAPrivateKey]],
    http: responses.RequestsMock,
) -> None:
    http.replace(responses.POST, lms.token_url, status=503, headers={"Retry-After": "20"})
    client = AgsClient(credentials_for(lms), store=store, signer=signer)

    with pytest.raises(AgsUnavailableError) as caught:
        client.tokens.get()
    assert caught.value.retry_after_s == 20
    assert store.get(client.tokens.cache_key + ":lock") is None  # the lock is released


class UnreachableStore:
    """A shared store whose backend is down (Redis restarting): every call raises."""

    def get(self, key: str) -> str | None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    def set(self, key: str, value: str, ttl_s: float) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    def delete(self, key: str) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")


def test_store_outage_costs_only_the_cache(
    lms: FakeLms,
    signer: Callable[[], tuple[str, RSAPrivateKey]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = AgsClient(credentials_for(lms), store=UnreachableStore(), signer=signer)

    item = line_item(client, lms)
    assert client.post_score(item, a_score(student_of(lms), T0)) == ScoreOutcome.ACCEPTED
    # No cache: one token per service call (find, find again under the lock, create, score).
    assert len(lms.token_requests) == 4
    assert "Shared store get failed (ConnectionError)" in caplog.text


def test_token_and_assertion_never_reach_logs_or_errors(
    ags: AgsClient, lms: FakeLms, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    item, user = line_item(ags, lms), student_of(lms)
    lms.expire_tokens()
    ags.post_score(item, a_score(user, T0))
    lms.fail_next(500)
    with pytest.raises(AgsUnavailableError) as caught:
        ags.post_score(item, a_score(user, T0 + timedelta(seconds=1)))

    secrets = [*lms.tokens, *(t.form["client_assertion"] for t in lms.token_requests)]
    secrets += [f"{type(lms).__name__.lower()}-token-1"]
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in str(caught.value)


# --- values and helpers --------------------------------------------------------------------------


def test_score_body_has_both_or_neither_score_fields() -> None:
    bare = a_score("u1", T0).to_json()
    graded = a_score("u1", T0, "reported").to_json()

    assert "scoreGiven" not in bare and "scoreMaximum" not in bare
    assert (graded["scoreGiven"], graded["scoreMaximum"]) == (77.0, 100.0)
    assert graded["gradingProgress"] == "FullyGraded"
    assert graded["timestamp"] == "2030-05-01T12:00:00.250+00:00"


@pytest.mark.parametrize(
    "fields",
    [
        {"score_given": 5.0},
        {"score_maximum": 100.0},
        {"score_given": -1.0, "score_maximum": 100.0},
        {"score_given": 1.0, "score_maximum": 0.0},
        {"timestamp": datetime(2030, 5, 1, 12, 0)},
    ],
)
def test_invalid_score_values_are_refused(fields: dict[str, object]) -> None:
    values: dict[str, object] = {
        "user_id": "u1",
        "activity_progress": ActivityProgress.COMPLETED,
        "grading_progress": GradingProgress.FULLY_GRADED,
        "timestamp": T0,
        **fields,
    }
    with pytest.raises(ValueError):
        Score(**values)  # type: ignore[arg-type]


def test_timestamp_is_sent_in_utc_with_milliseconds() -> None:
    local = T0.astimezone(timezone(timedelta(hours=5)))
    assert a_score("u1", local).to_json()["timestamp"] == "2030-05-01T12:00:00.250+00:00"


def test_with_query_keeps_existing_parameters() -> None:
    url = with_query("https://m.example/lineitems?type_id=1", {"tag": "proctoring", "type_id": "1"})
    assert parse_qs(urlsplit(url).query) == {"type_id": ["1"], "tag": ["proctoring"]}


def test_usable_scopes_keeps_what_the_launch_grants() -> None:
    assert usable_scopes([SCOPE_SCORE, SCOPE_RESULT_READONLY]) == {SCOPE_SCORE}
