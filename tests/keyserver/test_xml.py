"""The key-server documents: built and parsed through the binding's schema, every failure one precise error."""

from __future__ import annotations

import pytest

from conformance.binding.loader import load_binding
from conformance.keyserver.schema import XmlNames, keyserver_schema, schema_text
from conformance.keyserver.xml import KeyServerXml, KeyServerXmlError, UeKey

BINDING = load_binding()
NAMES = XmlNames.from_binding(BINDING)
XML = KeyServerXml(BINDING)
DOC = UeKey("imsi-001010123456789", bytes.fromhex("ae47bf35"), bytes(range(32)))


def test_documents_round_trip():
    assert XML.parse_registration(XML.registration("emse-1")) == "emse-1"
    assert XML.parse_registration_answer(XML.registration_answer("s3ss10n")) == "s3ss10n"
    assert XML.parse_ue_key(XML.ue_key(DOC)) == DOC
    assert XML.parse_subscription(XML.subscription("https://127.0.0.1:8443/n")) == "https://127.0.0.1:8443/n"


def test_documents_use_the_binding_names_and_namespace():
    body = XML.ue_key(DOC).decode()
    assert f'<{NAMES.ue_key} xmlns="{NAMES.namespace}">' in body
    assert f"<{NAMES.key_id}>{DOC.key_id.hex()}</{NAMES.key_id}>" in body


def test_a_profile_renaming_elements_gets_its_own_schema():
    renamed = load_binding({"rest.namespace": "urn:example:plugfest", "rest.xml.client_id": "EmseId"})
    xml = KeyServerXml(renamed)
    body = xml.registration("emse-1")
    assert b"<EmseId>" in body and b"urn:example:plugfest" in body
    assert xml.parse_registration(body) == "emse-1"
    with pytest.raises(KeyServerXmlError, match="expected"):
        xml.parse_registration(XML.registration("emse-1"))  # default namespace: not this profile's document
    assert keyserver_schema(renamed) is not keyserver_schema(BINDING)
    assert keyserver_schema(load_binding()) is keyserver_schema(BINDING)  # compiled once per set of names


def test_key_id_length_follows_the_binding():
    longer = KeyServerXml(load_binding({"keys.key_identifier.bits": 64}))
    assert longer.parse_ue_key(longer.ue_key(UeKey("ue", bytes(8), b"\x01"))).key_id == bytes(8)
    with pytest.raises(KeyServerXmlError, match=NAMES.key_id):
        longer.ue_key(DOC)  # a 4-octet key id is not a 64-bit one


def test_schema_values_are_escaped():
    names = XmlNames.from_binding(load_binding({"rest.namespace": 'urn:a"b&c'}))
    assert 'targetNamespace="urn:a&quot;b&amp;c"' in schema_text(names)


def test_names_that_make_no_schema_are_refused_with_their_keys():
    with pytest.raises(ValueError, match=r"rest.namespace / rest.xml"):
        KeyServerXml(load_binding({"rest.xml.ue_key": "not a name"}))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<a", "not well-formed XML"),
        (b'<?xml version="1.0" encoding="no-such"?><a/>', "not well-formed XML"),
        (b"<a/>", "root element is a, expected"),
        (f'<{NAMES.registration} xmlns="urn:other"/>'.encode(), "root element is {urn:other}"),
        (f'<{NAMES.registration} xmlns="{NAMES.namespace}"/>'.encode(), f"{NAMES.registration}: The content"),
        (
            f'<{NAMES.registration} xmlns="{NAMES.namespace}"><{NAMES.client_id}></{NAMES.client_id}>'
            f"</{NAMES.registration}>".encode(),
            f"{NAMES.registration}/{NAMES.client_id}:",
        ),
        (
            f'<{NAMES.registration} xmlns="{NAMES.namespace}" a="1"><{NAMES.client_id}>x</{NAMES.client_id}>'
            f"</{NAMES.registration}>".encode(),
            "attribute not allowed",
        ),
        (b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', "a DTD is not allowed"),
    ],
)
def test_every_failure_is_one_error_naming_what_is_wrong(body, reason):
    with pytest.raises(KeyServerXmlError) as error:
        XML.parse_registration(body)
    assert reason in error.value.reason
    if "root element" not in reason:  # schema paths and messages are printed without namespaces
        assert NAMES.namespace not in error.value.reason


def test_ue_key_fields_are_checked():
    bad_key_id = XML.ue_key(DOC).replace(DOC.key_id.hex().encode(), b"zz")
    with pytest.raises(KeyServerXmlError, match=f"{NAMES.ue_key}/{NAMES.key_id}: invalid value 'zz'"):
        XML.parse_ue_key(bad_key_id)


def test_building_an_invalid_document_is_refused():
    with pytest.raises(KeyServerXmlError, match=NAMES.client_id):
        XML.registration("")
    with pytest.raises(KeyServerXmlError, match=NAMES.notify_uri):
        XML.subscription("http://plain.example/")


def test_entity_expansion_only_when_asked():
    body = (
        f'<!DOCTYPE {NAMES.registration} [<!ENTITY id "emse-1">]><{NAMES.registration} xmlns="{NAMES.namespace}">'
        f"<{NAMES.client_id}>&id;</{NAMES.client_id}></{NAMES.registration}>"
    ).encode()
    with pytest.raises(KeyServerXmlError, match="DTD"):
        XML.parse_registration(body)
    assert KeyServerXml(BINDING, expand_entities=True).parse_registration(body) == "emse-1"
