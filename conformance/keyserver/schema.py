"""The XML schema of the key-server documents, rendered from a shipped template with the binding's names.

No schema was published for either interface, so the namespace and every element name are binding parameters
(`rest.namespace`, `rest.xml.*`); a profile that renames them gets a schema that checks its own names. Each
distinct set of names is compiled once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from importlib import resources
from string import Template
from typing import Any
from xml.sax.saxutils import escape

import xmlschema

TEMPLATE = "keyserver.xsd.template"


@dataclass(frozen=True)
class XmlNames:
    """The names a key-server document is built from, as the binding gives them."""

    namespace: str
    registration: str
    client_id: str
    session_id: str
    ue_key: str
    ue_id: str
    key_id: str
    key: str
    notify_uri: str
    key_id_octets: int

    @classmethod
    def from_binding(cls, binding: Mapping[str, Any]) -> XmlNames:
        element_names = {f.name: binding[f"rest.xml.{f.name}"] for f in fields(cls) if f.name not in _NOT_ELEMENTS}
        return cls(
            namespace=binding["rest.namespace"],
            key_id_octets=binding["keys.key_identifier.bits"] // 8,
            **element_names,
        )

    def tag(self, name: str) -> str:
        """The namespaced (Clark notation) tag of an element: {rest.namespace}rest.xml.<name>."""
        return f"{{{self.namespace}}}{getattr(self, name)}"


_NOT_ELEMENTS = {"namespace", "key_id_octets"}


def schema_text(names: XmlNames) -> str:
    """The XSD for these names (each value escaped for the attribute it lands in)."""
    template = Template(resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8"))
    return template.substitute({k: escape(str(v), {'"': "&quot;"}) for k, v in asdict(names).items()})


@functools.lru_cache(maxsize=16)
def compiled_schema(names: XmlNames) -> xmlschema.XMLSchema:
    try:
        return xmlschema.XMLSchema(schema_text(names))
    except xmlschema.XMLSchemaException as exc:
        raise ValueError(f"rest.namespace / rest.xml: the binding's names do not make a valid schema: {exc}") from None


def keyserver_schema(binding: Mapping[str, Any]) -> xmlschema.XMLSchema:
    """The compiled schema for a binding (cached per set of names)."""
    return compiled_schema(XmlNames.from_binding(binding))
