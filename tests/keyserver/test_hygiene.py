"""Bad bodies are refused with the binding's status and a short reason, and the server keeps serving."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.binding.loader import load_binding
from conformance.keyserver.schema import XmlNames
from tests.keyserver import CLIENT_ID

BINDING = load_binding()
STATUS = BINDING.section("rest.status")
NAMES = XmlNames.from_binding(BINDING)
LIMIT = BINDING["rest.max_body_bytes"]
CONTENT_TYPE = BINDING["rest.content_type"]
# A small billion laughs: 10^4 expansions if a parser allowed it (it must not get that far).
ENTITY_BOMB = (
    f'<?xml version="1.0"?><!DOCTYPE {NAMES.registration} ['
    '<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>'
    f'<{NAMES.registration} xmlns="{NAMES.namespace}"><{NAMES.client_id}>&e;</{NAMES.client_id}></{NAMES.registration}>'
).encode()


@pytest.fixture(scope="module")
def client(ks):
    with ks.client(CLIENT_ID) as c:
        yield c


@pytest.fixture(scope="module")
def session_id(client):
    return client.register(CLIENT_ID)


def post_registration(client, body, content_type=CONTENT_TYPE):
    return client.request("POST", client.path("register"), content=body, headers={"content-type": content_type})


def assert_still_serving(client):
    response = post_registration(client, client.xml.registration(CLIENT_ID))
    assert response.status_code == STATUS["registered"][0], response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", ""])
def test_wrong_content_type_is_unsupported(client, content_type):
    response = post_registration(client, client.xml.registration(CLIENT_ID), content_type)
    assert response.status_code == STATUS["unsupported_media_type"][0]
    assert CONTENT_TYPE in response.text
    assert_still_serving(client)


def test_content_type_parameters_are_accepted(client):
    response = post_registration(client, client.xml.registration(CLIENT_ID), CONTENT_TYPE + "; charset=utf-8")
    assert response.status_code == STATUS["registered"][0]


def test_declared_oversized_body_is_too_large(client):
    response = post_registration(client, b"<" * (LIMIT + 1))
    assert response.status_code == STATUS["too_large"][0]
    assert_still_serving(client)


def test_streamed_oversized_body_is_too_large(client):
    """A chunked body declares no length: the server counts while it reads."""

    def chunks():
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = client.http.post(client.path("register"), content=chunks(), headers={"content-type": CONTENT_TYPE})
    assert "content-length" not in response.request.headers
    assert response.status_code == STATUS["too_large"][0]
    assert_still_serving(client)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<unclosed", "not well-formed"),
        (b"\xff\xfe not xml", "not well-formed"),
        (b"", "not well-formed"),
        (f"<{NAMES.registration}/>".encode(), "expected"),  # no namespace
        (f'<{NAMES.session_id} xmlns="{NAMES.namespace}">x</{NAMES.session_id}>'.encode(), "expected"),
        (f'<{NAMES.registration} xmlns="{NAMES.namespace}"/>'.encode(), NAMES.registration),  # no client id
        (
            f'<{NAMES.registration} xmlns="{NAMES.namespace}"><{NAMES.client_id}> padded</{NAMES.client_id}>'
            f"</{NAMES.registration}>".encode(),
            NAMES.client_id,
        ),
        (
            f'<{NAMES.registration} xmlns="{NAMES.namespace}"><{NAMES.client_id}>a</{NAMES.client_id}><x/>'
            f"</{NAMES.registration}>".encode(),
            "Unexpected child",
        ),
        (ENTITY_BOMB, "DTD"),
        (b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>', "DTD"),
    ],
    ids=[
        "unclosed",
        "binary",
        "empty",
        "no-namespace",
        "wrong-root",
        "missing-child",
        "padded-identity",
        "extra-child",
        "entity-bomb",
        "external-dtd",
    ],
)
def test_malformed_or_invalid_xml_is_a_bad_request(client, body, reason):
    response = post_registration(client, body)
    assert response.status_code == STATUS["bad_request"][0]
    assert reason in response.text and len(response.text) < 300
    assert_still_serving(client)


def test_malformed_subscription_is_a_bad_request(client, session_id):
    body = f'<{NAMES.notify_uri} xmlns="{NAMES.namespace}">ftp://x</{NAMES.notify_uri}>'.encode()
    response = client.request("POST", client.path("subscription", session_id=session_id), content=body)
    assert response.status_code == STATUS["bad_request"][0]
    assert NAMES.notify_uri in response.text


@pytest.mark.parametrize("key_id", ["zz", "00", "0" * 64])
def test_malformed_key_id_is_a_bad_request(client, session_id, key_id):
    response = client.request("GET", client.path("ue_key", session_id=session_id, ue_id="ue", key_id=key_id))
    assert response.status_code == STATUS["bad_request"][0]


def test_a_slash_in_a_path_segment_is_not_redirected(client, session_id):
    """uvicorn decodes %2F before routing: the path gains a segment, matches no route, and is not redirected."""
    response = client.request("GET", client.path("ue_key", session_id=session_id, ue_id="0", key_id="0/"))
    assert response.status_code == STATUS["unknown_key"][0] and "location" not in response.headers


# -- fuzz -------------------------------------------------------------------------------------------------

_ELEMENT_NAMES = [NAMES.registration, NAMES.client_id, NAMES.session_id, NAMES.ue_key, NAMES.notify_uri, "x"]
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_XMLISH_LEAF = _TEXT | st.sampled_from(["&amp;", "&x;", "&#0;", "<!--c-->", "<![CDATA[x]]>", "<", "&"])


def _element(children):
    return st.builds(
        lambda name, xmlns, kids: f"<{name}{xmlns}>{''.join(kids)}</{name}>",
        st.sampled_from(_ELEMENT_NAMES),
        st.sampled_from(["", f' xmlns="{NAMES.namespace}"', ' xmlns="urn:other"']),
        st.lists(children, max_size=3),
    )


_XMLISH = st.builds(
    lambda prolog, body: (prolog + body).encode(),
    st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="nope"?>', "<!DOCTYPE r>"]),
    st.recursive(_XMLISH_LEAF, _element, max_leaves=8),
)
_FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_ALLOWED = {STATUS[k][0] for k in ("registered", "bad_request", "forbidden", "unsupported_media_type", "too_large")}


@_FUZZ
@given(body=st.binary(max_size=512) | _XMLISH, route=st.sampled_from(["register", "subscription"]))
def test_fuzzed_bodies_never_break_the_server(client, session_id, body, route):
    path = client.path(route, session_id=session_id) if route == "subscription" else client.path(route)
    response = client.request("POST", path, content=body)
    assert response.status_code in _ALLOWED, (response.status_code, response.text)
    assert_still_serving(client)


@_FUZZ
@given(ue_id=_TEXT.filter(lambda s: s.strip("./")), key_id=_TEXT.filter(lambda s: s.strip("./")))
def test_fuzzed_key_paths_never_break_the_server(client, session_id, ue_id, key_id):
    response = client.request("GET", client.path("ue_key", session_id=session_id, ue_id=ue_id, key_id=key_id))
    assert response.status_code in {STATUS["bad_request"][0], STATUS["unknown_key"][0], STATUS["key_delivered"][0]}
    assert_still_serving(client)
