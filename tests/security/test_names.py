"""Path and name tricks on every route that takes a name: `..` and its encodings, encoded slashes, NUL, over-long
names, and unicode look-alikes of a collection's name. A key scoped to 'team-a-*' must never reach the other
team's collection through one, nothing may answer 500, and no answer may carry the other team's data.

The routes come from the app's router (every path parameter), plus the two that take a collection's name in the
body or the query (COLLECTION_ELSEWHERE): a new name-taking route is tried without being listed here.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from urllib.parse import unquote

import pytest

from gateway.api.auth import COLLECTION_PARAM
from tests.security.attack import OTHER, OWN, PATTERN, TEAM_A, Answer, raw_request
from tests.security.conftest import Target
from tests.security.test_routes import ON_MODULE_LOOP, PARAMS, ROUTES

FOREIGN, OWN_MISSING, TRAVERSAL = "foreign", "own-missing", "traversal"
# (id, the path segment as sent, what it is to a key scoped to 'team-a-*' in a collection's place,
#  the status of POST /collections and of a restore under that name)
TRICKS = [
    ("dotdot", "..", TRAVERSAL, 400),
    ("dotdot-encoded", "%2e%2e", TRAVERSAL, 400),
    ("dotdot-encoded-upper", "%2E%2E", TRAVERSAL, 400),
    ("slashes-encoded", "team-a-x%2f..%2f..%2fteam-b-docs", TRAVERSAL, 400),
    ("backslashes-encoded", "team-a-x%5c..%5cteam-b-docs", OWN_MISSING, 400),
    ("nul", "%00", FOREIGN, 400),
    ("nul-after-own-prefix", "team-a-%00", OWN_MISSING, 400),
    ("over-long", "x" * 4000, FOREIGN, 400),
    ("over-long-own-prefix", "team-a-" + "x" * 4000, OWN_MISSING, 400),
    ("cyrillic-e", "t%D0%B5am-a-docs", FOREIGN, 400),
    ("unicode-hyphen", "team%E2%80%90a-docs", FOREIGN, 400),
    ("fullwidth-t", "%EF%BD%94eam-a-docs", FOREIGN, 400),
    ("zero-width-space", "team-a-docs%E2%80%8B", OWN_MISSING, 400),
    ("upper-case", "TEAM-A-docs", FOREIGN, 403),
    ("trailing-space", "team-b-docs%20", FOREIGN, 400),
    ("other-team", OTHER, FOREIGN, 403),
]
TRICK_IDS = [t[0] for t in TRICKS]


def test_the_tricks_are_what_they_say() -> None:
    for trick, segment, kind, _ in TRICKS:
        if kind != TRAVERSAL:
            assert fnmatchcase(unquote(segment), PATTERN) is (kind == OWN_MISSING), trick


NAMED = [(m, r, p) for m, r in ROUTES for p in re.findall(r"\{(\w+)\}", r)]


def place(route: str, param: str, segment: str) -> str:
    """`route` with `segment` in `param`'s place and the scoped key's own collection in any other."""
    values = {**PARAMS, COLLECTION_PARAM: OWN, param: segment}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route)


def leaks(target: Target, answer: Answer) -> bool:
    text = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body)
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{OTHER} secret" in text or target.other_id in text


@ON_MODULE_LOOP
@pytest.mark.parametrize(("method", "route", "param"), NAMED, ids=[f"{m} {r} {{{p}}}" for m, r, p in NAMED])
async def test_tricks_in_a_path_parameter(target: Target, method: str, route: str, param: str) -> None:
    body = b"{}" if method == "POST" else None
    for trick, segment, kind, _ in TRICKS:
        answer = await raw_request(target.port, method, place(route, param, segment), TEAM_A.header(), body)
        where = f"{trick}: {method} {place(route, param, segment)[:120]} -> {answer}"[:600]
        assert answer.status < 500 and not leaks(target, answer), where
        if kind == TRAVERSAL:
            # Wherever the path ends up once its dots are resolved, it is not the other team's data.
            continue
        if param == COLLECTION_PARAM and kind == FOREIGN:
            assert answer.status == 403 and (method == "HEAD" or answer.code == "forbidden"), where
        else:
            # Its own (missing) collection, or a document, snapshot, job, model or file no one has: 400 or 404.
            assert answer.status in (400, 404), where
            assert method == "HEAD" or (answer.code and answer.code != "forbidden"), where


@ON_MODULE_LOOP
@pytest.mark.parametrize(("trick", "segment", "kind", "status"), TRICKS, ids=TRICK_IDS)
async def test_tricks_as_the_name_of_a_new_collection(
    target: Target, trick: str, segment: str, kind: str, status: int
) -> None:
    name = unquote(segment)
    body = json.dumps({"name": name, "dimension": 3}).encode()
    created = await raw_request(target.port, "POST", "/collections", TEAM_A.header(), body)
    restored = await raw_request(
        target.port, "POST", f"/collections/restore?name={segment}", TEAM_A.header(), b"x", "application/octet-stream"
    )
    for answer in (created, restored):
        assert answer.status == status, (trick, answer)
        assert answer.code == ("forbidden" if status == 403 else "invalid_input"), (trick, answer)
    listed = await raw_request(target.port, "GET", "/collections", TEAM_A.header())
    assert [c["name"] for c in listed.body["collections"]] == [OWN]
