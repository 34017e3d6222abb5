"""Fuzzing a key server (the HSE's EAS-facing side, TS 33.163 Annex B; the EMKS of TR 33.863 Sol. #10) with
Hypothesis: requests generated from the shipped XSD and the binding's paths, then mutated, sent over the
harness's own mutual-TLS client; each failure shrunk to the minimal request list and written as `key_client`
steps that `best-conformance run --case-file` replays (issue 17).

Each example is one to three requests, each of one of three kinds:
- body: a registration or subscription whose document is generated from the schema the key server validates
  against (`keyserver.schema`: every global element, its content model, each simple type's facets), then mutated
  with the structure in mind: an unknown element (in the namespace, another, none), a missing, repeated or
  reordered element, a value of the wrong type or length or a huge one, an unknown attribute, another namespace or
  root, comments, CDATA, deep nesting; and at the octet level: other and lying encodings, invalid UTF-8, DTDs with
  internal, external and parameter entities, truncation, no XML at all;
- http: a valid request made wrong at the HTTP level: another method, path (extra segments, slashes, a query),
  content type, extra or huge header fields, a body padded to the size limit's edges;
- key: a key request for a session, UE or key id that must be refused (an unissued session, another client's,
  an unknown UE, a wrong key id), or the right one.

Oracles, after every request and example: never a 5xx (`no_5xx`), always an answer within the reply timeout
(`no_hang`), never a UE key for a request it must refuse (`no_key_when_refused`), and the key server still serves
afterwards: a registration and a key fetch complete (`still_serves`, the proof of life). A connection the
server closes without an answer is a refusal, not a finding: the proof of life that follows judges it.

The example runs through the engine's own verbs on one `Context`, so a finding's steps are exactly what was
sent: the setup (a UE session towards an HSE; the registrations), the shrunk requests, the proof of life. The
shrunk example is replayed once more on a fresh context and its key-server exchanges kept as JSON evidence
(`evidence/key_server-<n>.json`; a pcap of TLS would show nothing).

Traffic goes only to the profile's key server: notify URIs and external entities name this host or files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from conformance.engine.context import Context
from conformance.engine.model import STEP_KEYS
from conformance.engine.results import CheckFailed, Inconclusive, NotApplicable, NotRun
from conformance.engine.verbs import VERBS
from conformance.engine.verbs.key_client import NO_5XX, NO_HANG, NO_KEY
from conformance.fuzz.findings import Finding, FuzzReport, FuzzSetupError
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.schema import keyserver_schema
from conformance.profile import LoadedProfile

INTERFACE = "key_server"
DEFAULT_EXAMPLES = 300  # examples per run unless told: finds the catalogue fault in ~60 examples (median)
MAX_REQUESTS = 3  # per example
OTHER_IDENTITY = "fuzz-other-client"  # a second client, for requests naming its session (embedded SUTs)
ORACLES = {NO_5XX: "no_5xx", NO_HANG: "no_hang", NO_KEY: "no_key_when_refused"}
SUMMARIES = {
    "no_5xx": "the key server answers a server error (5xx) to {what}",
    "no_hang": "the key server gives no answer within the reply timeout to {what}",
    "no_key_when_refused": "the key server hands out a UE key to {what}, which it must refuse",
    "still_serves": "after {what}, the key server no longer serves a registration and a key fetch",
}


# ---- the requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as the `key_client: request` step gives it: the path may hold {session}, {ue_id}, {key_id}."""

    kind: str  # body | http | key: which strategy made it (for the summary)
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    pad: int = 0
    session_of: str | None = None  # None: the client's own session; unissued; another identity's
    no_key: bool = True
    what: str = ""  # the mutation, in words

    def step(self) -> dict[str, Any]:
        options: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.headers:
            options["headers"] = dict(self.headers)
        if self.body is not None:
            text = _text(self.body)
            if text is None:
                options["body_hex"] = self.body.hex()
            else:
                options["body"] = text
        if self.pad:
            options["pad"] = self.pad
        if self.session_of is not None:
            options["session_of"] = self.session_of
        if self.no_key:
            options["no_key"] = True
        return {"key_client": "request", "with": options}

    def describe(self) -> str:
        size = len(self.body or b"") + self.pad
        return (
            f"{self.method} {self.path}" + (f" ({self.what})" if self.what else "") + (f", {size} octets" * bool(size))
        )


def _text(body: bytes) -> str | None:
    """The body as YAML-safe text if it is UTF-8 of printable characters (and tabs, newlines), else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(not (c.isprintable() or c in "\n\t") for c in text) or "\r" in text:
        return None
    return text


# ---- documents from the schema ----------------------------------------------------------------------------


@dataclass
class Node:
    """An XML element as the fuzzer builds it; rendered by hand so that mutations may break what ElementTree would
    not let them (elements without a namespace beside namespaced ones, CDATA, comments)."""

    ns: str | None
    name: str
    text: str = ""
    children: list[Node] = field(default_factory=list)
    attrs: list[tuple[str, str]] = field(default_factory=list)
    cdata: bool = False
    comment: str | None = None  # a comment before the element's end tag
    raw: str = ""  # markup put in as it is before the end tag (deep nesting, without recursing to render it)

    def copy(self) -> Node:
        return replace(self, children=[c.copy() for c in self.children], attrs=list(self.attrs))

    def render(self, parent_ns: str | None = "\0") -> str:
        attrs = "".join(f" {name}={quoteattr(value)}" for name, value in self.attrs)
        if self.ns != parent_ns:
            attrs = f" xmlns={quoteattr(self.ns or '')}" + attrs
        text = f"<![CDATA[{self.text}]]>" if self.cdata else escape(self.text)
        inner = text + "".join(child.render(self.ns) for child in self.children)
        if self.comment is not None:
            inner += f"<!--{self.comment}-->"
        inner += self.raw
        return f"<{self.name}{attrs}>{inner}</{self.name}>"


@dataclass(frozen=True)
class ElementSpec:
    """One element of the schema: a simple value (facets) or a sequence of child elements."""

    ns: str
    name: str
    primitive: str = "string"
    min_length: int | None = None
    max_length: int | None = None
    patterns: tuple[str, ...] = ()
    children: tuple[ElementSpec, ...] = ()


def schema_elements(binding: Mapping[str, Any]) -> dict[str, ElementSpec]:
    """Every global element of the key server's schema (by local name), read from the compiled XSD."""

    def spec(element: Any) -> ElementSpec:
        ns, name = element.name[1:].split("}", 1)
        xsd_type = element.type
        if xsd_type.is_complex():
            return ElementSpec(ns, name, children=tuple(spec(c) for c in xsd_type.content.iter_elements()))
        patterns = tuple(xsd_type.patterns.regexps) if xsd_type.patterns else ()
        return ElementSpec(
            ns, name, xsd_type.primitive_type.local_name, xsd_type.min_length, xsd_type.max_length, patterns
        )

    return {spec(e).name: spec(e) for e in keyserver_schema(binding).elements.values()}


SAFE_TEXT = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Co", "Cn"))
HOSTS = ("127.0.0.1", "localhost", "[::1]")  # a notify URI never names another host: traffic stays here


def value_strategy(spec: ElementSpec, hints: Mapping[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """A valid value for a simple element, from its facets (a hint, e.g. the client's own identity, first)."""
    low, high = spec.min_length or 0, spec.max_length
    if spec.primitive == "hexBinary":
        size = st.binary(min_size=low, max_size=high if high is not None else max(low, 48))
        valid: st.SearchStrategy[str] = size.map(bytes.hex)
    elif spec.primitive == "anyURI":
        path = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_.", max_size=30)
        valid = st.builds(lambda host, p: f"https://{host}:1/{p}", st.sampled_from(HOSTS), path)
    elif spec.patterns:
        text = st.from_regex(spec.patterns[0], fullmatch=True, alphabet=SAFE_TEXT)
        valid = text.filter(lambda v: low <= len(v) <= (high or len(v)))
    else:
        valid = st.text(SAFE_TEXT, min_size=low, max_size=min(high or 64, 64))
    hint = hints.get(spec.name)
    return st.one_of(hint, valid) if hint is not None else valid


def document_strategy(spec: ElementSpec, hints: Mapping[str, st.SearchStrategy[str]]) -> st.SearchStrategy[Node]:
    """A schema-valid document with `spec` as its root."""
    if not spec.children:
        return value_strategy(spec, hints).map(lambda v: Node(spec.ns, spec.name, v))
    children = [document_strategy(child, hints) for child in spec.children]
    return st.tuples(*children).map(lambda kids: Node(spec.ns, spec.name, children=list(kids)))


OTHER_NS = "urn:fuzz:other"
BAD_VALUES = st.one_of(
    st.sampled_from(["", " ", " padded ", "zz", "0x00", "-1", "\t", "é" * 3, "<", "&amp;", "1e309", "NaN"]),
    st.integers(256, 4096).map(lambda n: "a" * n),  # past maxLength
    st.integers(60_000, 70_000).map(lambda n: "f" * n),  # a huge value, about the body size limit
    st.text(SAFE_TEXT, max_size=40),
)
NEAR_MISS = "{known}2"  # an element name one character off a known one (the schema's, read at run time)
ELEMENT_NAMES = st.one_of(
    st.sampled_from(["Extra", "x", NEAR_MISS, "Unknown"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
SHORT_TEXT = st.text(SAFE_TEXT, max_size=20)


def _target(root: Node, index: int) -> Node:
    """An element of the document: the root or one of its children (those carry the values)."""
    nodes = [root, *root.children]
    return nodes[index % len(nodes)]


Mutation = Callable[[Node], tuple[Node, str]]
OctetForm = Callable[[str], tuple[bytes, str]]


@st.composite
def node_mutation(draw: st.DrawFn) -> Mutation:
    """One structure-aware mutation of a document (drawn before the document is known, so that the strategy is
    built once): it returns the mutated copy and the mutation in words."""
    kind = draw(
        st.sampled_from(
            [
                "reordered",
                "missing_element",
                "repeated_element",
                "bad_value",
                "unknown_attribute",
                "other_namespace",
                "other_root",
                "unknown_element",
                "cdata",
                "comment",
                "mixed_text",
                "deep_nesting",
            ]
        )
    )
    index = draw(st.integers(0, 7))  # which element: taken modulo the document's
    if kind == "unknown_element":
        where, name, text = draw(st.sampled_from(["same", "other", "none"])), draw(ELEMENT_NAMES), draw(SHORT_TEXT)
    elif kind == "repeated_element":
        times = draw(st.integers(1, 50))
    elif kind == "bad_value":
        value = draw(BAD_VALUES)
    elif kind == "unknown_attribute":
        attr = (draw(st.sampled_from(["id", "type", "xml:lang", "a"])), draw(SHORT_TEXT))
    elif kind == "other_namespace":
        namespace = draw(st.sampled_from([OTHER_NS, None]))
    elif kind == "other_root":
        root_name = draw(ELEMENT_NAMES)
    elif kind == "comment":
        comment = draw(SHORT_TEXT).replace("-", "")
    elif kind == "mixed_text":
        mixed = draw(st.text(SAFE_TEXT, min_size=1, max_size=20))
    elif kind == "deep_nesting":
        depth = draw(st.integers(2, 2000))

    def apply(original: Node) -> tuple[Node, str]:
        root = original.copy()
        if kind == "unknown_element":
            ns = {"same": root.ns, "other": OTHER_NS, "none": None}[where]
            new = name.format(known=_target(root, index).name) if name == NEAR_MISS else name
            root.children.insert(index % (len(root.children) + 1), Node(ns, new, text))
            return root, f"an unknown element {new} in namespace {ns or 'none'}"
        if kind == "missing_element" and root.children:
            gone = root.children.pop(index % len(root.children))
            return root, f"no {gone.name}"
        if kind == "repeated_element" and root.children:
            at = index % len(root.children)
            root.children[at + 1 : at + 1] = [root.children[at].copy() for _ in range(times)]
            return root, f"{root.children[at].name} {times + 1} times"
        if kind == "reordered" and len(root.children) > 1:
            root.children.reverse()
            return root, "the elements in reverse order"
        target = _target(root, index)
        if kind == "bad_value":
            target.text = value
            return root, f"{target.name} = {value[:20]!r}" + ("..." if len(value) > 20 else "")
        if kind == "unknown_attribute":
            target.attrs.append(attr)
            return root, f"an unknown attribute {attr[0]} on {target.name}"
        if kind == "other_namespace":
            root.ns = namespace
            return root, f"the root in namespace {namespace or 'none'}"
        if kind == "other_root":
            root.name = root_name.format(known=root.name) if root_name == NEAR_MISS else root_name
            return root, f"the root named {root.name}"
        if kind == "cdata":
            target.cdata = True
            return root, f"{target.name} in CDATA"
        if kind == "comment":
            target.comment = comment
            return root, f"a comment in {target.name}"
        if kind == "mixed_text":
            root.text = mixed
            return root, "text beside the root's elements"
        if kind == "deep_nesting":
            root.raw += "<x>" * depth + "</x>" * depth
            return root, f"unknown elements nested {depth} deep"
        return root, "unchanged (nothing to mutate)"

    return apply


DECLARATION = '<?xml version="1.0" encoding="{}"?>'
DTD_ENTITIES = {
    "dtd_internal": '<!ENTITY e "text">',
    "dtd_external": '<!ENTITY e SYSTEM "file:///dev/null">',
    "dtd_parameter": '<!ENTITY % p SYSTEM "file:///dev/null"> %p;',
    "dtd_bomb": '<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY e "&b;&b;&b;&b;&b;&b;&b;">',
}

# every form but UTF-8 as it is, which octet_form draws half of the time
OCTET_FORMS = ("none", "utf16", "latin1", "lying", "unknown", "bom", "invalid", *DTD_ENTITIES, "truncated", "garbage")
OCTET_FORMS += ("empty",)


@st.composite
def octet_form(draw: st.DrawFn, doctype: str) -> OctetForm:
    """How a rendered document goes out as octets: half of the time UTF-8 as it is, else with another or a lying
    encoding, invalid octets, a DTD (entities internal, external to a local file, parameter; a small bomb),
    truncated, or no XML at all. `doctype`: the root name a DTD declares."""
    kind = draw(st.one_of(st.just("utf8"), st.sampled_from(OCTET_FORMS)))  # UTF-8 as it is half of the time
    position = draw(st.integers(0, 4096))  # where octets are cut or put in: taken modulo the document's length
    label = ""
    if kind == "lying":
        label = draw(st.sampled_from(["UTF-16", "UTF-32", "ISO-8859-1", "US-ASCII", "EBCDIC-CP-US", "Shift_JIS"]))
    elif kind == "unknown":
        label = draw(st.sampled_from(["x-unknown", "utf-7", "", "UTF-8 ", "cp1252", "koi8-r", "big5", "utf-8-sig"]))
    elif kind == "invalid":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xf4\x90\x80\x80"]))
    elif kind == "garbage":
        garbage = draw(st.binary(max_size=64))

    def apply(text: str) -> tuple[bytes, str]:
        data = (DECLARATION.format("UTF-8") + text).encode()
        if kind == "utf8":
            return data, ""
        if kind == "none":
            return text.encode(), "no XML declaration"
        if kind == "utf16":
            return (DECLARATION.format("UTF-16") + text).encode("utf-16"), "in UTF-16"
        if kind == "latin1":
            return (DECLARATION.format("ISO-8859-1") + text).encode("latin-1", "replace"), "in ISO-8859-1"
        if kind in ("lying", "unknown"):
            return (DECLARATION.format(label) + text).encode(), f"UTF-8 declared as {label!r}"
        if kind == "bom":
            return b"\xef\xbb\xbf" + data, "with a byte order mark"
        if kind == "invalid":
            at = position % (len(data) + 1)
            return data[:at] + bad + data[at:], f"the octets {bad.hex()} at {at}"
        if kind in DTD_ENTITIES:
            body = text if kind == "dtd_parameter" else text.replace("</", "&e;</", 1)
            dtd = f"<!DOCTYPE {doctype} [{DTD_ENTITIES[kind]}]>"
            return (DECLARATION.format("UTF-8") + dtd + body).encode(), kind.replace("_", " ")
        if kind == "truncated":
            at = position % max(1, len(data))
            return data[:at], f"cut after {at} octets"
        if kind == "garbage":
            return garbage, "not XML"
        return b"", "an empty body"

    return apply


METHODS = st.one_of(
    st.sampled_from(["POST", "GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE"]),
    st.from_regex(r"[A-Z]{1,12}", fullmatch=True),
)
PATH_SUFFIXES = st.sampled_from(["", "/", "//", "?a=1", "/extra", ";p=1", "/..", "?" + "q" * 2000, "%00"])
# Transfer-Encoding is left out: httpx frames the body itself, and a second framing would be the client's error
HEADER_NAMES = st.sampled_from(
    [
        *("content-encoding", "accept", "accept-encoding", "x-fuzz", "expect", "range", "if-match"),
        *("authorization", "cookie", "origin", "content-language", "accept-charset"),
    ]
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["gzip", "identity", "br", "*", "bytes=0-1", "100-continue", "chunked"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.integers(1000, 8000).map(lambda n: "h" * n),  # a huge header field
)


# ---- the strategies of one key server -----------------------------------------------------------------------


class KeyServerStrategies:
    """The request strategies for one binding and the client's identities."""

    def __init__(self, binding: Mapping[str, Any], identity: str, other: str | None, ue_id: str):
        self.binding = binding
        self.elements = schema_elements(binding)
        names = {k: binding[f"rest.xml.{k}"] for k in ("registration", "client_id", "notify_uri", "ue_id", "key_id")}
        self.names = names
        self.content_type = binding["rest.content_type"]
        self.limit = binding["rest.max_body_bytes"]
        self.identities = [identity, *([other] if other else [])]
        self.hints = {
            names["client_id"]: st.sampled_from(self.identities),
            names["ue_id"]: st.just(ue_id),
        }
        self.paths = {k: binding[f"rest.paths.{k}"] for k in ("register", "registration", "ue_key", "subscription")}
        self.paths["notification"] = binding["rest.paths.notification"]
        types = (self.content_type, None, "text/xml", "application/json", self.content_type + "; charset=utf-16")
        types += (self.content_type.upper(), "multipart/form-data; boundary=x", "", "application/xml;;", "*/*")
        self.content_types = st.sampled_from(types)
        roots = ("registration", "notify_uri", "ue_key", "session_id")
        self.documents = {r: document_strategy(self.elements[binding[f"rest.xml.{r}"]], self.hints) for r in roots}
        self.mutation = node_mutation()
        self.octet_form = octet_form(names["registration"])
        self.bodies = {(r, m): self._body(r, m) for r in roots for m in (False, True)}
        body = self._body_request()  # twice the weight: the schema's mutations are the most numerous
        self._requests = st.lists(st.one_of(self._key(), self._http(), body, body), min_size=1, max_size=MAX_REQUESTS)

    def requests(self) -> st.SearchStrategy[list[Request]]:
        """One to MAX_REQUESTS requests of the three kinds."""
        return self._requests

    # -- body: a POST whose document is generated from the schema, then mutated

    @st.composite
    def _body(draw: st.DrawFn, self: KeyServerStrategies, root: str, mutate: bool) -> tuple[bytes, str]:
        node = draw(self.documents[root])
        if not mutate:
            return (DECLARATION.format("UTF-8") + node.render()).encode(), f"a valid {node.name} document"
        what = []
        for mutation in draw(st.lists(self.mutation, min_size=1, max_size=2)):
            node, said = mutation(node)
            what.append(said)
        octets, form = draw(self.octet_form)(node.render())
        return octets, ", ".join([*what, *([form] if form else [])])

    def _body_request(self) -> st.SearchStrategy[Request]:
        def build(route: str, body: tuple[bytes, str]) -> Request:
            path = self.paths[route].replace("{session_id}", "{session}")
            return Request("body", "POST", path, (("content-type", self.content_type),), body[0], what=body[1])

        roots = ("registration", "notify_uri", "ue_key", "session_id")
        register = st.builds(build, st.just("register"), self.bodies["registration", True])
        subscribe = st.builds(build, st.just("subscription"), st.one_of(*(self.bodies[r, True] for r in roots)))
        misplaced = st.builds(build, st.just("register"), st.one_of(*(self.bodies[r, False] for r in roots[1:])))
        return st.one_of(register, register, subscribe, misplaced)  # registrations first: the interface's main body

    # -- http: a valid request made wrong at the HTTP level

    @st.composite
    def _http(draw: st.DrawFn, self: KeyServerStrategies) -> Request:
        route = draw(st.sampled_from(["register", "ue_key", "registration", "subscription", "notification", "root"]))
        path = "/" if route == "root" else self.paths[route].replace("{session_id}", "{session}")
        method = draw(METHODS)
        suffix = draw(PATH_SUFFIXES)
        if draw(st.booleans()):
            path = path.replace("/", "//", 1) if draw(st.booleans()) else path.upper()
        body: bytes | None = None
        if method in ("POST", "PUT", "PATCH") or draw(st.booleans()):
            root = "notify_uri" if route == "subscription" else "registration"
            body = (DECLARATION.format("UTF-8") + draw(self.documents[root]).render()).encode()
        headers = []
        content_type = draw(self.content_types)
        if content_type is not None and body is not None:
            headers.append(("content-type", content_type))
        for _ in range(draw(st.integers(0, 3))):
            headers.append((draw(HEADER_NAMES), draw(HEADER_VALUES).strip()))
        pad = 0
        if body is not None and draw(st.integers(0, 4)) == 0:
            pad = max(0, self.limit - len(body) + draw(st.integers(-2, 2)))
        what = (
            f"{method} on {route}"
            + (f", path + {suffix!r}" if suffix else "")
            + (f", content type {content_type!r}" if body is not None else "")
        )
        # the client's own session, UE and key id: a key it gets on the key route is its own (no_key elsewhere)
        return Request("http", method, path + suffix, tuple(headers), body, pad, no_key=route != "ue_key", what=what)

    # -- key: a key request that must be refused, or the right one

    @st.composite
    def _key(draw: st.DrawFn, self: KeyServerStrategies) -> Request:
        session_of = draw(st.sampled_from([None, "unissued", *self.identities[1:]]))
        ue_id = draw(
            st.one_of(
                st.just("{ue_id}"),
                st.sampled_from(["001010000000999", "", "a" * 300, "..", "*", "{ue_id}0", "0{ue_id}"]),
                st.text(SAFE_TEXT, max_size=20).map(lambda v: quote(v, safe="")),
            )
        )
        key_id = draw(
            st.one_of(
                st.just("{key_id}"),
                st.sampled_from(["00000000", "ffffffff", "", "zzzzzzzz", "0" * 6, "0" * 10, "0" * 1000, "{key_id}00"]),
                st.binary(min_size=1, max_size=8).map(bytes.hex),
            )
        )
        path = self.paths["ue_key"].replace("{session_id}", "{session}")
        path = path.replace("{ue_id}", ue_id.replace("{ue_id}", "\0u")).replace(
            "{key_id}", key_id.replace("{key_id}", "\0k")
        )
        path = path.replace("\0u", "{ue_id}").replace("\0k", "{key_id}")
        method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE"]))
        entitled = method == "GET" and session_of is None and ue_id == "{ue_id}" and key_id == "{key_id}"
        what = ", ".join(
            f
            for f in (
                f"session of {session_of}" if session_of else "",
                "" if ue_id == "{ue_id}" else f"UE {ue_id[:20]!r}",
                "" if key_id == "{key_id}" else f"key id {key_id[:20]!r}",
            )
            if f
        )
        return Request("key", method, path, (), None, session_of=session_of, no_key=not entitled, what=what)


# ---- running examples ---------------------------------------------------------------------------------------


class _Failed(Exception):
    """An example broke an oracle (one subclass per oracle, so that Hypothesis shrinks each on its own)."""


_FAILURES: dict[str, type[_Failed]] = {o: type(f"Failed_{o}", (_Failed,), {}) for o in [*SUMMARIES]}


@dataclass(frozen=True)
class Outcome:
    oracle: str
    message: str
    request: Request | None  # the request that broke it (None: the proof of life)


def run_step(ctx: Context, step: Mapping[str, Any]) -> None:
    """One case step (YAML shape: {verb: value, with: ...}) through the engine's verb, as the runner runs it."""
    verb = next(k for k in step if k not in STEP_KEYS)
    args = {k: v for k, v in step.items() if k != verb}
    args["_value"] = step[verb]
    VERBS[verb](ctx, args)


class KeyServerFuzzer:
    """One fuzz run: the context the examples share, the setup and proof-of-life steps, the failures seen."""

    def __init__(self, profile: LoadedProfile, certs: CertificateDirectory | None, out: Path):
        self.profile = profile
        self.certs = certs
        self.out = out
        kind = profile.sut.kind
        if kind not in ("hse", "emks"):
            raise FuzzSetupError(f"the key server is fuzzed on an HSE or an EMKS, not on a {kind}")
        if not profile.endpoints.key_server:
            raise FuzzSetupError("the profile names no key-server endpoint (endpoints.key_server)")
        self.identity = profile.pixit.emse_id if kind == "emks" else profile.pixit.eas_id
        clients = [name for name in profile.tls.clients if name != self.identity] if profile.tls else []
        self.other = OTHER_IDENTITY if certs is not None else (clients[0] if clients else None)
        key = {"provisioned": -1} if kind == "emks" else "session"
        self.setup: list[dict[str, Any]] = [{"start_session": {}}] if kind == "hse" else []
        self.setup.append({"key_client": "register"})
        self.proof = [{"key_client": "register"}, {"key_client": "fetch_key", "with": {"key": key}}]
        self.ctx = self.context("fuzz")
        self.failures: dict[str, tuple[list[Request], Outcome]] = {}
        self.examples = 0
        self.dead = False
        self.started = time.monotonic()
        self.found_after: dict[str, float] | None = None  # examples and seconds when a failure was first seen

    def context(self, name: str) -> Context:
        pcap = self.out / "pcaps" / f"{name}.pcap"
        pcap.parent.mkdir(parents=True, exist_ok=True)
        return Context(self.profile, pcap, certs=self.certs)

    def start(self) -> str:
        """Run the setup (and register the other client) and a proof of life once; the UE id keys are asked for."""
        try:
            for step in self.setup_steps(other=True):
                run_step(self.ctx, step)
            for step in self.proof:
                run_step(self.ctx, step)
        except (CheckFailed, Inconclusive, NotRun, NotApplicable) as exc:
            raise FuzzSetupError(f"the key server does not serve before fuzzing: {exc}") from None
        if self.profile.sut.kind == "emks":
            return self.profile.pixit.subscribers[0].imsi
        return self.ctx.ue().credentials.imsi

    def setup_steps(self, *, other: bool) -> list[dict[str, Any]]:
        steps = list(self.setup)
        if other and self.other is not None:
            steps.insert(len(steps) - 1, {"key_client": "register", "with": {"identity": self.other}})
        return steps

    def steps(self, requests: list[Request]) -> list[dict[str, Any]]:
        """The whole case: setup, the requests, the proof of life."""
        other = any(r.session_of == self.other for r in requests)
        return [*self.setup_steps(other=other), *(r.step() for r in requests), *self.proof]

    def judge(self, ctx: Context, requests: list[Request]) -> Outcome | None:
        for request in requests:
            try:
                run_step(ctx, request.step())
            except CheckFailed as exc:
                return Outcome(ORACLES.get(exc.expectation, "no_5xx"), str(exc), request)
            except (Inconclusive, NotRun, NotApplicable) as exc:
                return Outcome("still_serves", f"{type(exc).__name__}: {exc}", request)
        return self.alive(ctx)

    def alive(self, ctx: Context) -> Outcome | None:
        """The proof of life; tried twice, so that a connection the server closed after its last answer (uvicorn
        does after a 500) is not taken for a server that stopped serving."""
        for attempt in (1, 2):
            try:
                for step in self.proof:
                    run_step(ctx, step)
                return None
            except (CheckFailed, Inconclusive, NotRun, NotApplicable) as exc:
                if attempt == 2:
                    return Outcome("still_serves", f"the proof of life failed: {exc}", None)
                time.sleep(0.05)
        return None

    def example(self, requests: list[Request]) -> None:
        self.examples += 1
        if self.dead and self.alive(self.ctx) is not None:
            reject()  # the key server died earlier: nothing sent now can be judged
        outcome = self.judge(self.ctx, requests)
        if outcome is None:
            return
        self.dead = self.dead or outcome.oracle == "still_serves"
        if self.found_after is None:
            self.found_after = {"examples": self.examples, "seconds": round(time.monotonic() - self.started, 3)}
        self.failures[outcome.oracle] = (list(requests), outcome)  # the last is Hypothesis's shrunk one
        raise _FAILURES[outcome.oracle](outcome.message)

    def replay(self, requests: list[Request], name: str) -> tuple[Outcome | None, Context]:
        """The requests as their finding's case runs them: on a fresh context, after the setup; the outcome and the
        context (its exchanges are the evidence; the caller closes it)."""
        ctx = self.context(name)
        try:
            for step in self.setup_steps(other=any(r.session_of == self.other for r in requests)):
                run_step(ctx, step)
            return self.judge(ctx, requests), ctx
        except Exception as exc:  # the setup failed: the SUT no longer serves
            return Outcome("still_serves", f"the setup failed: {exc}", None), ctx

    def minimise(self, requests: list[Request], oracle: str) -> list[Request]:
        """Hypothesis's shrunk list without each request it can do without (its list shrinking sometimes simplifies
        a request it could have deleted): a request stays only if the others, replayed alone, keep the oracle."""
        kept = list(requests)
        for request in list(requests):
            if len(kept) == 1 or self.dead:
                break
            candidate = [r for r in kept if r is not request]
            outcome, ctx = self.replay(candidate, "fuzz")
            with _quietly():
                ctx.close()
            if outcome is not None and outcome.oracle == oracle:
                kept = candidate
                self.failures[oracle] = (kept, outcome)
        return kept

    def finding(self, n: int, oracle: str, seed: int) -> tuple[Finding, bool]:
        """The recorded minimal example as a Finding, replayed once more on a fresh context for its evidence; and
        whether the replay broke the same oracle again (else it is not reported as a finding)."""
        self.minimise(self.failures[oracle][0], oracle)
        requests, outcome = self.failures[oracle]
        replayed, ctx = self.replay(requests, f"{INTERFACE}-{n}")
        evidence = self.out / "evidence" / f"{INTERFACE}-{n}.json"
        evidence.parent.mkdir(parents=True, exist_ok=True)
        exchanges = [e.to_dict() for e in ctx.client_exchanges]
        evidence.write_text(
            json.dumps(
                {
                    "oracle": oracle,
                    "observed": outcome.message,
                    "replayed": None if replayed is None else {"oracle": replayed.oracle, "observed": replayed.message},
                    "exchanges": exchanges,
                },
                indent=2,
                default=str,
            )
            + "\n",
            encoding="utf-8",
        )
        with _quietly():
            ctx.close()
        culprit = outcome.request or (requests[-1] if requests else None)
        what = culprit.describe() if culprit else "the requests"
        finding = Finding(
            INTERFACE, oracle, SUMMARIES[oracle].format(what=what), self.steps(requests), str(evidence), seed
        )
        return finding, replayed is not None and replayed.oracle == oracle

    def close(self) -> None:
        with _quietly():
            self.ctx.close()
            for client in list(self.ctx.key_clients.values()):
                client.close()


class _quietly:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def fuzz_key_server(
    profile: LoadedProfile,
    *,
    examples: int = DEFAULT_EXAMPLES,
    seed: int = 0,
    database: Path | str,
    out: Path | str,
    certs: CertificateDirectory | None = None,
    seconds: float | None = None,
) -> FuzzReport:
    """Fuzz the profile's key server with `examples` generated examples (or until `seconds` have passed), the
    same `seed` giving the same examples; the Hypothesis database in `database` (a saved failure replays first).
    `certs`: the embedded SUT's certificates (else the profile's `tls`). Evidence goes under `out`. Raises
    FuzzSetupError when the key server does not serve to begin with."""
    out = Path(out)
    start = time.monotonic()
    fuzzer = KeyServerFuzzer(profile, certs, out)
    try:
        ue_id = fuzzer.start()
        strategies = KeyServerStrategies(profile.binding, fuzzer.identity, fuzzer.other, ue_id)
        stop_at = None if seconds is None else start + seconds

        @hypothesis_seed(seed)
        @settings(
            max_examples=examples,
            database=DirectoryBasedExampleDatabase(str(database)),
            deadline=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            report_multiple_bugs=True,
            print_blob=False,
        )
        @given(strategies.requests())
        def key_server_example(requests: list[Request]) -> None:
            if stop_at is not None and time.monotonic() > stop_at:
                return
            fuzzer.example(requests)

        try:
            key_server_example()
        except _Failed:
            pass
        except BaseExceptionGroup as group:  # several oracles broken: each shrunk on its own
            harness = group.subgroup(lambda exc: not isinstance(exc, _Failed | BaseExceptionGroup))
            if harness is not None:
                raise harness from None
        findings, unconfirmed = [], []
        for oracle in sorted(fuzzer.failures):
            finding, reproduced = fuzzer.finding(len(findings) + 1, oracle, seed)
            if reproduced:
                findings.append(finding)
            else:  # seen once, not again on a fresh context: not a claim to make (the evidence file stays)
                unconfirmed.append(f"{oracle}: {finding.summary}")
    finally:
        fuzzer.close()
    found_after = fuzzer.found_after if findings else None
    return FuzzReport(
        INTERFACE,
        fuzzer.examples,
        time.monotonic() - start,
        seed,
        findings,
        found_after=found_after,
        unconfirmed=unconfirmed,
    )
