"""The SUT profile: what the system under test is, where it listens, what it claims (PICS), the test data it
needs (PIXIT), binding overrides and, for the embedded reference SUTs, how they behave.

A broken profile gets every problem at once, each with its path in the file and what is expected, e.g.
`pixit.subscribers[0].k: expected 16 octets as hex (32 hex digits), got 'zz'`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from conformance.binding import Binding, BindingError, load_binding
from conformance.faults import UnknownFault, parse_faults


class ProfileError(ValueError):
    """Everything wrong with a profile; `problems` has one line per problem, each starting with its path."""

    def __init__(self, problems: list[str], origin: str):
        self.problems = problems
        self.origin = origin
        super().__init__(f"{origin}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


def _hex(octets: int | None) -> Any:
    def parse(value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        text = str(value).replace(" ", "").replace(":", "")
        want = f"{octets} octets as hex ({2 * octets} hex digits)" if octets else "octets as hex"
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            bad = next((c for c in text if c not in "0123456789abcdefABCDEF"), None)
            why = f"not hex ({'a character other than 0-9, a-f' if bad else 'an odd number of digits'})"
            raise ValueError(f"expected {want}: {why}, got {value!r}") from None
        if octets is not None and len(raw) != octets:
            raise ValueError(f"expected {want}, got {len(raw)} octets")
        return raw

    return BeforeValidator(parse)


_AS_HEX = PlainSerializer(lambda value: value.hex(), return_type=str, when_used="json")  # dumps load back
Hex = Annotated[bytes, _hex(None), _AS_HEX]
Key128 = Annotated[bytes, _hex(16), _AS_HEX]
Sqn = Annotated[bytes, _hex(6), _AS_HEX]
Amf = Annotated[bytes, _hex(2), _AS_HEX]
PlmnId = Annotated[bytes, _hex(3), _AS_HEX]
Digits = Annotated[str, Field(pattern=r"^[0-9]{6,15}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sut(Strict):
    kind: Literal["hse", "emks", "emse", "ue"]
    vendor: str
    product: str
    version: str = ""


class UdpEndpoint(Strict):
    host: str = "127.0.0.1"
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="default: the binding's port (transport.udp_port, dtls.port); 0, for the harness's HSE towards a "
        "UE under test: a free port",
    )


class ListenEndpoint(Strict):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0: a free port")


class Endpoints(Strict):
    hse: UdpEndpoint | None = Field(
        None,
        description="the HSE's EMSDP endpoint; towards a UE under test, where the harness's HSE listens (the UE is "
        "configured to send its Session Request there; port 0: a free port)",
    )
    emse: UdpEndpoint | None = Field(None, description="the EMSE's DTLS endpoint (default port: dtls.port)")
    key_server: str | None = Field(
        None,
        pattern=r"^https://",
        description="base URL of the key-server REST: the SUT's (HSE, EMKS), or the harness's own EMKS that an "
        "EMSE under test registers with",
    )
    notification: ListenEndpoint = Field(
        ListenEndpoint(),
        description="where the harness's push receiver listens for the key server's notifications (HTTPS with "
        "mutual TLS); the SUT must reach it there",
    )


class CertKey(Strict):
    """A certificate and its private key (PEM files)."""

    cert: Path
    key: Path


class Receiver(CertKey):
    """The server certificate of the harness's push receiver, which the SUT's key server must trust, and the CA
    that issued the SUT's own client certificate for pushing (default: tls.ca)."""

    ca: Path | None = None


class Tls(Strict):
    """PEM files for the key-server interfaces. Relative paths are read from the profile's folder; every file
    is checked when the profile loads.

    Towards an HSE or EMKS: `ca` issued the SUT's server certificate; `cert`/`key` are the harness's client
    certificate for the default identity (pixit.eas_id, or pixit.emse_id towards an EMKS); `clients` gives one
    for each further identity a case uses (e.g. eas2.example.com, emse-2); `receiver` is the server certificate
    the harness's push receiver presents (without it the harness issues one from its own CA, which the SUT must
    then trust: `best-conformance harness-ca` prints it). A certificate from a CA the SUT does not trust
    ("foreign") the harness always makes itself.
    Towards an EMSE: `cert`/`key` are the server certificate of the harness's EMKS, `ca` issued the EMSE's
    client certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    clients: dict[str, CertKey] = {}
    receiver: Receiver | None = None

    @model_validator(mode="after")
    def _pairs(self) -> Tls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give cert and key together")
        return self


class Subscriber(Strict):
    imsi: Digits
    k: Key128
    op: Key128 | None = None
    opc: Key128 | None = None
    sqn: Sqn = bytes(6)  # the SQN both sides start from
    amf: Amf = bytes.fromhex("8000")  # separation bit set
    key_agreements: list[str] = ["umts", "5g_aka"]
    services: list[str] = ["key_agreement_only", "up_integrity", "up_confidential"]
    modes: list[str] = ["ue_to_hse", "ue_to_eas"]
    eas_ids: list[str] = []
    rands: list[Key128] = []  # AKA runs whose keys a key server holds (EMKS provisioning), oldest first

    @model_validator(mode="after")
    def _one_operator_key(self) -> Subscriber:
        if (self.op is None) == (self.opc is None):
            raise ValueError("give exactly one of op and opc")
        return self


def _long_enough(secret: bytes) -> bytes:
    if len(secret) < 16:
        raise ValueError(f"expected at least 16 octets as hex (32 hex digits), got {len(secret)} octets")
    return secret


LabSecret = Annotated[bytes, _hex(None), AfterValidator(_long_enough), _AS_HEX]
RANGE_RULES = {
    "hmac-sha256": "K = the first 16 octets of HMAC-SHA-256(secret, 'K' || IMSI), OPc = the first 16 octets of "
    "HMAC-SHA-256(secret, 'OPc' || IMSI); the label and the IMSI's digits as ASCII, no separator",
}


class SubscriberRange(Strict):
    """`count` subscribers with consecutive IMSIs from `first_imsi` (same number of digits), each with its own K
    and OPc derived from the lab secret by `rule` (RANGE_RULES), so that a SUT can be provisioned with thousands
    of subscribers from one line and a load test never shares SQN state between users
    (conformance.subscriber_ranges). The other fields are shared by every subscriber of the range."""

    first_imsi: Digits
    count: int = Field(ge=1, description="how many subscribers: IMSIs first_imsi, first_imsi + 1, ...")
    rule: Literal["hmac-sha256"] = Field(description="how each subscriber's K and OPc come from the secret")
    secret: LabSecret = Field(
        description="the lab secret (at least 16 octets as hex) the rule derives every K and OPc from; a secret "
        "like K, masked in every output"
    )
    sqn: Sqn = bytes(6)
    amf: Amf = bytes.fromhex("8000")
    key_agreements: list[str] = ["umts", "5g_aka"]
    services: list[str] = ["key_agreement_only", "up_integrity", "up_confidential"]
    modes: list[str] = ["ue_to_hse", "ue_to_eas"]
    eas_ids: list[str] = []
    rands: list[Key128] = []  # AKA runs an EMKS holds for every subscriber of the range, oldest first

    @model_validator(mode="after")
    def _fits(self) -> SubscriberRange:
        digits = len(self.first_imsi)
        if int(self.first_imsi) + self.count > 10**digits:
            room = 10**digits - int(self.first_imsi)
            raise ValueError(
                f"count: {self.count} IMSIs from {self.first_imsi} do not fit in {digits} digits; at most {room}"
            )
        return self

    @property
    def last_imsi(self) -> str:
        return str(int(self.first_imsi) + self.count - 1).zfill(len(self.first_imsi))

    def holds(self, imsi: str) -> bool:
        """Whether `imsi` is one of the range's (same number of digits, within first_imsi .. last_imsi)."""
        return (
            len(imsi) == len(self.first_imsi) and imsi.isdigit() and 0 <= int(imsi) - int(self.first_imsi) < self.count
        )


class HomeNetworkKey(Strict):
    id: int = Field(ge=0, le=255)
    profile: Literal["A", "B"]
    public_key: Hex
    private_key: Hex | None = None  # only the home network (the reference HSE) has it


class Pics(Strict):
    """What the SUT claims to support; cases that need more are 'not applicable'."""

    key_agreements: list[str] = ["umts", "5g_aka"]
    identities: list[Literal["imsi", "suci"]] = ["imsi"]
    suci_profiles: list[Literal["A", "B"]] = []
    services: list[str] = ["key_agreement_only", "up_integrity", "up_confidential"]
    modes: list[str] = ["ue_to_hse"]
    manage_keys_from_hse: bool = True
    manage_keys_from_ue: bool = True
    terminate_from_hse: bool = True
    terminate_from_ue: bool = True  # a UE under test ends its session with a Terminate Request (triggers.terminate)
    # a UE under test loops every downlink user-plane payload it accepts back as uplink user data (as the UE test
    # loop mode of TS 38.509 does for the radio), which makes the acceptance of a downlink message observable
    test_loop: bool = False
    eas_interface: bool = True
    deregistration: bool = True  # an EMSE deregisters from its EMKS (optional in seed 002 6.x.2.2.2.3)
    subscription: bool = True  # a key server pushes new keys to subscribed clients (FFS in seed 002 6.x.2.2.2)


Trigger = Literal["register", "deregister", "provision", "session", "send_data", "manage_keys", "terminate"]


class Pixit(Strict):
    """Test data and tolerances the harness needs to run against this SUT."""

    subscribers: list[Subscriber] = Field(min_length=1)
    subscriber_ranges: list[SubscriberRange] = Field(
        [],
        description="many subscribers in a few lines (IMSI range, K and OPc derived from a lab secret): what a load "
        "test draws distinct subscribers from. The conformance suites use `subscribers`",
    )
    home_network_keys: list[HomeNetworkKey] = []
    serving_network_name: str = "5G:mnc001.mcc001.3gppnetwork.org"
    serving_network_id: PlmnId | None = Field(
        None,
        description="the serving network's PLMN identity (3 octets, TS 24.301 9.9.3.32): the SN id of KASME in EPS "
        "AKA (TS 33.401 A.2). Default: the MCC and the 3-digit MNC serving_network_name writes; give it for a PLMN "
        "whose MNC has two digits (MCC 001, MNC 01: 00f110)",
    )
    eas_id: str = "eas.example.com"
    emse_id: str = "emse-1"
    reply_timeout: float = Field(2.0, gt=0, description="how long the SUT may take to answer (s)")
    silence_window: float | None = Field(
        None,
        gt=0,
        description="the longest the SUT takes to react to a message (s): the cases' silence windows are cut to it. "
        "Default: the windows the cases give (300 ms for most)",
    )
    timing: Literal["fixed", "measured"] = Field(
        "fixed",
        description="measured: reply timeouts and silence windows are derived from the SUT's measured round trip "
        "(roles/timing.py), never longer than the fixed ones; what the harness uses against its own references on "
        "this host. Keep fixed for a SUT whose answers may take long at times",
    )
    registration_timeout: float = Field(10.0, gt=0, description="how long an EMSE may take to (re)register")
    triggers: dict[Trigger, str] = Field(
        {},
        description="shell commands that make the SUT act: an EMSE register or deregister; an EMKS take a new "
        "AKA run's key ({ue_id}, {rand}, {key_id}, {e2m_int_key} in hex are filled in); a UE start a session, send "
        "uplink user data ({data} in hex), ask for new keys or terminate its session. Cases needing a trigger the "
        "PIXIT lacks are not run",
    )

    @model_validator(mode="after")
    def _ranges_apart(self) -> Pixit:
        """An IMSI has one K: ranges must not overlap each other or a listed subscriber."""
        for i, rng in enumerate(self.subscriber_ranges):
            span = f"{rng.first_imsi} .. {rng.last_imsi}"
            for j, sub in enumerate(self.subscribers):
                if rng.holds(sub.imsi):
                    raise ValueError(
                        f"subscriber_ranges[{i}]: IMSI {sub.imsi} of pixit.subscribers[{j}] falls inside the range "
                        f"({span}); move the range or the subscriber (an IMSI has one K)"
                    )
            for j, other in enumerate(self.subscriber_ranges[:i]):
                if rng.holds(other.first_imsi) or other.holds(rng.first_imsi):
                    raise ValueError(
                        f"subscriber_ranges[{i}] ({span}) overlaps subscriber_ranges[{j}] "
                        f"({other.first_imsi} .. {other.last_imsi}); make them disjoint (an IMSI has one K)"
                    )
        return self


class Reference(Strict):
    """How an embedded reference SUT behaves (ignored for a vendor's SUT)."""

    faults: list[str] = []
    rekey_after_up_messages: int | None = Field(None, ge=1, description="HSE starts Manage Keys after N UP messages")
    idle_timeout: float | None = Field(None, gt=0, description="HSE terminates a session idle this long (s)")
    eas_user_plane: UdpEndpoint | None = Field(None, description="HSE relays UE-to-EAS user plane to/from here")


class Profile(Strict):
    sut: Sut
    endpoints: Endpoints = Endpoints()
    tls: Tls = Tls()
    pics: Pics = Pics()
    pixit: Pixit
    binding: dict[str, Any] = Field(
        {}, description="binding overrides, or the name of a YAML file of them (e.g. probe's binding-override.yaml)"
    )
    reference: Reference = Reference()

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class LoadedProfile:
    """A validated profile with its effective binding and the file it came from."""

    def __init__(self, profile: Profile, binding: Binding, path: Path | None):
        self.profile = profile
        self.binding = binding
        self.path = path
        self.peers: Any = None  # what the harness runs beside the SUT for a run (engine.peers.Peers)
        self.died_at: Any = None  # an embedded reference SUT: () -> when a dead fault killed it (epoch s) or None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.profile, name)

    @property
    def hse_endpoint(self) -> tuple[str, int]:
        hse = self.profile.endpoints.hse or UdpEndpoint()
        return hse.host, hse.port or self.binding["transport.udp_port"]

    @property
    def emse_endpoint(self) -> tuple[str, int]:
        emse = self.profile.endpoints.emse or UdpEndpoint()
        return emse.host, emse.port or self.binding["dtls.port"]


def shipped_profile(name: str) -> Path:
    """A profile shipped with the harness (e.g. reference-hse.yaml): inside an installed wheel, or in profiles/ of
    a checkout."""
    packaged = resources.files("conformance").joinpath("profiles", name)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "profiles" / name


def load_profile(source: str | Path | dict[str, Any]) -> LoadedProfile:
    """Read and validate a profile (a YAML file or a mapping). Raises ProfileError listing every problem."""
    origin, path = ("profile", None) if isinstance(source, dict) else (str(source), Path(source))
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ProfileError([f"cannot read: {exc.strerror}"], origin) from None
        except yaml.YAMLError as exc:
            raise ProfileError([f"not valid YAML: {exc}"], origin) from None
    else:
        data = source
    if not isinstance(data, dict):
        raise ProfileError(["expected a mapping with sut, pixit and the other sections"], origin)
    if path is not None and "tls" in data:
        data = {**data, "tls": _resolved(data["tls"], path.resolve().parent)}
    if isinstance(data.get("binding"), str):  # a file of overrides, e.g. the probe's binding-override.yaml
        data = {**data, "binding": _binding_file(data["binding"], path, origin)}

    problems: list[str] = []
    profile = None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems += [f"{_path(e['loc'])}: {_message(e)}" for e in exc.errors()]
    if profile is not None:
        problems += tls_file_problems(profile.tls)
    binding = None
    try:
        binding = load_binding(data.get("binding") or {})
    except BindingError as exc:
        problems += [f"binding.{p.removeprefix('overrides: ')}" for p in exc.problems]
    problems += _check_against_binding(data, binding or load_binding())  # the defaults' names if overrides fail
    if problems:
        raise ProfileError(problems, origin)
    return LoadedProfile(profile, binding, path)


def _binding_file(name: str, path: Path | None, origin: str) -> Any:
    """`binding: FILE`: the overrides that YAML file holds, read relative to the profile's folder."""
    file = Path(name) if Path(name).is_absolute() or path is None else path.resolve().parent / name
    try:
        overrides = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ProfileError([f"binding: cannot read {file}: {exc.strerror}"], origin) from None
    except yaml.YAMLError as exc:
        raise ProfileError([f"binding: {file} is not valid YAML: {exc}"], origin) from None
    if not isinstance(overrides, dict):
        raise ProfileError([f"binding: {file} must hold a mapping of binding keys"], origin)
    return overrides


TLS_FILE_FIELDS = ("ca", "cert", "key")


def _resolved(tls: Any, base: Path) -> Any:
    """The tls section with each relative file path made relative to the profile's folder (where a lab keeps
    its certificates next to the profile), not to wherever the harness happens to be started."""
    if not isinstance(tls, dict):
        return tls
    out: dict[str, Any] = {}
    for name, value in tls.items():
        if name in TLS_FILE_FIELDS and isinstance(value, str | Path) and not Path(value).is_absolute():
            out[name] = str(base / value)
        elif name == "clients" and isinstance(value, dict):
            out[name] = {identity: _resolved(pair, base) for identity, pair in value.items()}
        elif name == "receiver":
            out[name] = _resolved(value, base)
        else:
            out[name] = value
    return out


def tls_file_problems(tls: Tls) -> list[str]:
    """Each TLS file of the profile that is missing, unreadable or not what its field needs, with its field:
    found when the profile loads, not as a FileNotFoundError verdict minutes into a run."""
    fields: list[tuple[str, Path | None, str]] = [
        ("tls.ca", tls.ca, "cert"),
        ("tls.cert", tls.cert, "cert"),
        ("tls.key", tls.key, "key"),
    ]
    for identity, pair in tls.clients.items():
        fields += [(f"tls.clients.{identity}.cert", pair.cert, "cert")]
        fields += [(f"tls.clients.{identity}.key", pair.key, "key")]
    if tls.receiver is not None:
        fields += [("tls.receiver.cert", tls.receiver.cert, "cert"), ("tls.receiver.key", tls.receiver.key, "key")]
        fields.append(("tls.receiver.ca", tls.receiver.ca, "cert"))
    problems = []
    for where, file, kind in fields:
        if file is None:
            continue
        problem = _pem_problem(file, kind)
        if problem:
            problems.append(f"{where}: {problem}: {file}")
    return problems


def _pem_problem(file: Path, kind: str) -> str | None:
    """Why `file` cannot serve as a PEM certificate (kind cert) or private key (kind key), or None."""
    try:
        content = file.read_bytes()
    except FileNotFoundError:
        return "no such file (relative paths are read from the profile's folder)"
    except IsADirectoryError:
        return "a folder, not a file"
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    if kind == "key":
        return None if b"PRIVATE KEY-----" in content else "not a PEM private key"
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(content)
    except ValueError:
        return "not a PEM certificate"
    return None


def _check_against_binding(data: dict[str, Any], binding: Binding) -> list[str]:
    """Names a profile uses must be ones the binding knows (services, modes, key agreements) or the catalogue
    knows (faults). Works on the raw data so that these problems are listed with the structural ones."""
    vocab = {
        "services": set(binding.section("emsdp.hse_config.services")),
        "modes": set(binding.section("emsdp.hse_config.modes")),
        "key_agreements": set(binding.section("keys.root_by_key_agreement")),
    }
    pixit = data.get("pixit") if isinstance(data.get("pixit"), dict) else {}
    places = [("pics", data.get("pics"))]
    for group in ("subscribers", "subscriber_ranges"):
        holders = pixit.get(group) if isinstance(pixit.get(group), list) else []
        places += [(f"pixit.{group}[{i}]", s) for i, s in enumerate(holders)]
    problems = []
    for where, holder in places:
        if not isinstance(holder, dict):
            continue
        for field, known in vocab.items():
            names = holder.get(field)
            for i, name in enumerate(names if isinstance(names, list) else []):
                if name not in known:
                    problems.append(f"{where}.{field}[{i}]: {name!r} is not one of {', '.join(sorted(known))}")
    reference = data.get("reference") if isinstance(data.get("reference"), dict) else {}
    faults = reference.get("faults")
    if isinstance(faults, list):
        try:
            parse_faults(str(f) for f in faults)
        except UnknownFault as exc:
            problems.append(f"reference.faults: {exc}")
    return problems


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


SECRET_FIELDS = {"k", "op", "opc", "private_key", "key", "secret"}


def _message(error: dict[str, Any]) -> str:
    """Pydantic's error as a sentence; the offending value is quoted unless it is, or holds, a secret."""
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "string_pattern_mismatch":
        message = f"expected {'6 to 15 digits' if '0-9' in str(error.get('ctx', {})) else 'another format'}"
    got = error.get("input")
    field = error["loc"][-1] if error["loc"] else None
    if isinstance(got, dict | list) or got is None:
        return message  # a whole object: may hold secrets, and the path says which one
    if field in SECRET_FIELDS:
        got_text = f"got {len(str(got))} characters (not shown: a secret)"
        return message.replace(f"got {got!r}", got_text) if "got" in message else f"{message}, {got_text}"
    return message if "got" in message else f"{message}, got {got!r}"
