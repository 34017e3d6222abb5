"""Build and read the key-server XML documents, checked against the binding's schema both ways.

Bodies come from the network, so they are parsed with defusedxml refusing any DTD (and with it every entity
and external reference) before xmlschema sees them: xmlschema's own default still expands local entities.
Every problem, whatever layer finds it, is one `KeyServerXmlError` that names the element and what is wrong.

The pushed notification is the UE key document itself (same root, same content): a pushed key and a fetched
key are the same fact.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import defusedxml
import defusedxml.ElementTree

from conformance.keyserver.schema import XmlNames, keyserver_schema


class KeyServerXmlError(ValueError):
    """A body that is not the expected, schema-valid document; `reason` is short enough for a 400 answer."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class UeKey:
    """One UE's key for one client, as answered to a GET and as pushed."""

    ue_id: str
    key_id: bytes
    key: bytes


class KeyServerXml:
    """The documents of one binding. `expand_entities` parses with plain xml.etree (internal entities
    expanded): only the reference key server's `xml_entities_expanded` fault sets it."""

    def __init__(self, binding: Mapping[str, Any], *, expand_entities: bool = False):
        self.names = XmlNames.from_binding(binding)
        self.schema = keyserver_schema(binding)
        self.expand_entities = expand_entities

    # -- build ------------------------------------------------------------------------------------------

    def registration(self, client_id: str) -> bytes:
        return self._build("registration", client_id=client_id)

    def registration_answer(self, session_id: str) -> bytes:
        return self._build("session_id", text=session_id)

    def ue_key(self, doc: UeKey) -> bytes:
        """The answer to a key GET, and the body of a pushed notification."""
        return self._build("ue_key", ue_id=doc.ue_id, key_id=doc.key_id.hex(), key=doc.key.hex())

    def subscription(self, notify_uri: str) -> bytes:
        return self._build("notify_uri", text=notify_uri)

    # -- parse ------------------------------------------------------------------------------------------

    def parse_registration(self, body: bytes) -> str:
        """The client id a registration request carries."""
        return self._child_text(self._parse(body, "registration"), "client_id")

    def parse_registration_answer(self, body: bytes) -> str:
        """The session id of a registration answer."""
        return self._parse(body, "session_id").text or ""

    def parse_ue_key(self, body: bytes) -> UeKey:
        root = self._parse(body, "ue_key")
        return UeKey(
            ue_id=self._child_text(root, "ue_id"),
            key_id=bytes.fromhex(self._child_text(root, "key_id").strip()),
            key=bytes.fromhex(self._child_text(root, "key").strip()),
        )

    def parse_subscription(self, body: bytes) -> str:
        """The notify URI of a subscription request."""
        return self._parse(body, "notify_uri").text or ""

    # -- internals --------------------------------------------------------------------------------------

    def _build(self, root_name: str, text: str | None = None, **children: str) -> bytes:
        root = ET.Element(self.names.tag(root_name))
        root.text = text
        for name, value in children.items():
            ET.SubElement(root, self.names.tag(name)).text = value
        self._validate(root, root_name)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=self.names.namespace)

    def _parse(self, body: bytes, root_name: str) -> ET.Element:
        try:
            if self.expand_entities:
                root = ET.fromstring(body)
            else:
                root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
        except defusedxml.DefusedXmlException:  # DTDForbidden: nothing in a DTD gets a chance to act
            raise KeyServerXmlError("a DTD is not allowed (entities and external references are refused)") from None
        except (ET.ParseError, LookupError, ValueError) as exc:
            # LookupError: an encoding Python does not know; ValueError: one expat cannot read (multi-byte: UTF-32,
            # Shift_JIS, ...), a 500 until the fuzzer found it (issue 17)
            raise KeyServerXmlError(f"not well-formed XML: {exc}") from None
        self._validate(root, root_name)
        return root

    def _validate(self, root: ET.Element, root_name: str) -> None:
        expected = self.names.tag(root_name)
        if root.tag != expected:
            raise KeyServerXmlError(f"root element is {root.tag}, expected {expected}")
        error = next(self.schema.iter_errors(root), None)
        if error is not None:
            raise KeyServerXmlError(f"{_plain(error.path or root.tag)}: {_plain(error.reason or error.message)}")

    def _child_text(self, root: ET.Element, name: str) -> str:
        child = root.find(self.names.tag(name))
        return "" if child is None or child.text is None else child.text


def _plain(text: str) -> str:
    """A path or message without namespaces or the schema's own prefix, so the reason stays short:
    {urn:..}A/{urn:..}B -> A/B, 'ks:B' -> 'B'."""
    return re.sub(r"\{[^}]*\}|\bks:", "", text)
