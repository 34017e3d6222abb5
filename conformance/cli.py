"""`best-conformance`: the command line. Thin by design: each command calls the library and formats."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from conformance import __version__
from conformance.binding import Binding, BindingError, load_binding
from conformance.exit_codes import EXIT_FAIL, EXIT_HARNESS, EXIT_PASS, EXIT_USAGE
from conformance.requirements.ledger import SUT_KINDS


class Hex(click.ParamType):
    """Octets given as hex digits (spaces and colons allowed between groups)."""

    name = "hex"

    def __init__(self, octets: int | None = None):
        self.octets = octets

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"HEX{self.octets}" if self.octets else "HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        digits = str(value).replace(" ", "").replace(":", "").removeprefix("0x")
        # the value is not echoed: --k, --op and --opc are secrets
        if len(digits) % 2:
            self.fail(f"odd number of hex digits ({len(digits)})", param, ctx)
        try:
            octets = bytes.fromhex(digits)
        except ValueError:
            self.fail(f"not hex (a character other than 0-9, a-f) in {len(digits)} characters", param, ctx)
        if self.octets is not None and len(octets) != self.octets:
            self.fail(f"must be {self.octets} octets ({2 * self.octets} hex digits), got {len(octets)}", param, ctx)
        return octets


def _binding(files: tuple[str, ...]) -> Binding:
    return load_binding(*files)


binding_option = click.option(
    "--binding",
    "binding_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Binding overrides: a YAML file of binding keys or a SUT profile with a 'binding:' section. Repeatable; "
    "later files win.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="best-conformance")
def cli() -> None:
    """Conformance test harness for 3GPP BEST (TS 33.163) and its key-server interfaces."""


@cli.command()
@click.option("--k", "k", required=True, type=Hex(16), help="Subscriber key K.")
@click.option("--op", type=Hex(16), help="Operator variant OP (give --op or --opc).")
@click.option("--opc", type=Hex(16), help="OPc, derived from OP and K (give --op or --opc).")
@click.option("--rand", "rand", required=True, type=Hex(16), help="RAND.")
@click.option("--sqn", required=True, type=Hex(6), help="Sequence number SQN.")
@click.option("--amf", required=True, type=Hex(2), help="Authentication management field AMF.")
@click.option("--sn-id", type=Hex(3), help="Serving network identity (PLMN id, 3 octets) for KASME.")
@click.option("--snn", help="Serving network name for KHSE, e.g. 5G:mnc001.mcc001.3gppnetwork.org.")
@click.option("--eas-id", help="EAS identifier for the EAS keys (KInt_E2E, KInt_EAS_PSK).")
@click.option("--emse-id", help="EMSE identifier for e2m_key.")
@click.option("--third-party-key", type=Hex(), help="Third party key Ka for the combined e2e_key (seed 001).")
@click.option("--naf-key", type=Hex(), help="Ks_(ext/int)_NAF, the KDF key of the combined e2e_key (seed 001).")
@click.option(
    "--key-agreement",
    help="Which AKA roots the BEST keys: umts, eps, 5g_aka, eap_aka_prime. "
    "Default: 5g_aka with --snn, else eps with --sn-id, else umts.",
)
@binding_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def keys(
    k: bytes,
    op: bytes | None,
    opc: bytes | None,
    rand: bytes,
    sqn: bytes,
    amf: bytes,
    sn_id: bytes | None,
    snn: str | None,
    eas_id: str | None,
    emse_id: str | None,
    third_party_key: bytes | None,
    naf_key: bytes | None,
    key_agreement: str | None,
    binding_files: tuple[str, ...],
    as_json: bool,
) -> None:
    """Derive MILENAGE outputs, AUTN and the whole BEST / e2m key hierarchy, with every KDF input shown.

    Keys whose derivation rests on an assumed or overridden binding value are marked as binding-dependent.
    """
    from conformance.report.key_table import UnknownKeyAgreement, derive_key_table, render

    if (op is None) == (opc is None):
        raise click.UsageError("give exactly one of --op and --opc")
    try:
        key_table = derive_key_table(
            _binding(binding_files),
            k=k,
            op=op,
            opc=opc,
            rand=rand,
            sqn=sqn,
            amf=amf,
            sn_id=sn_id,
            snn=snn,
            eas_id=eas_id,
            emse_id=emse_id,
            third_party_key=third_party_key,
            naf_key=naf_key,
            key_agreement=key_agreement,
        )
    except UnknownKeyAgreement as exc:
        raise click.BadParameter(str(exc), param_hint="'--key-agreement'") from None
    if as_json:
        click.echo(json.dumps(key_table.to_document(), indent=2))
        return
    render(key_table, _console())


@cli.command("binding")
@binding_option
@click.option("--not-confirmed", is_flag=True, help="Only the values not confirmed by a spec clause.")
@click.option(
    "--alternatives",
    "with_alternatives",
    is_flag=True,
    help="Only the parameters that name alternative values (what `probe` searches), with them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def binding_command(
    binding_files: tuple[str, ...], not_confirmed: bool, with_alternatives: bool, as_json: bool
) -> None:
    """Show the effective binding: every open point, its value and where the value comes from; a parameter with
    alternatives (other values a reader may have chosen) lists them too."""
    binding = _binding(binding_files)
    params = binding.not_confirmed() if not_confirmed else binding.parameters()
    if with_alternatives:
        params = [p for p in params if p.alternatives]
    if as_json:
        document = binding.to_document()
        for p in params:
            if p.alternatives:
                document[p.key]["alternatives"] = [{"value": a.value, "source": a.source} for a in p.alternatives]
        click.echo(json.dumps({p.key: document[p.key] for p in params}, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"Binding ({len(params)} of {len(binding)} parameters)", title_justify="left")
    for column in ("key", "value", "basis", "source"):
        table.add_column(column, overflow="fold")
    for p in params:
        table.add_row(p.key, json.dumps(p.value, ensure_ascii=False), p.basis, p.source)
        for a in p.alternatives:
            table.add_row("", f"or {json.dumps(a.value, ensure_ascii=False)}", "alternative", a.source, style="dim")
    _console().print(table)


@cli.command()
@binding_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def vectors(binding_files: tuple[str, ...], as_json: bool) -> None:
    """Print worked known-answer vectors of the binding: every key with its KDF inputs, the key identifier, COUNT
    and one protected message per command, for the reference profile's test subscriber.

    For the default binding the YAML is fixtures/binding-vectors.yaml; an implementer checks their reading of the
    binding against it.
    """
    from conformance.vectors import compute_vectors, to_json, to_yaml

    try:
        binding = _binding(binding_files)
    except BindingError as exc:  # one line, naming the file and every problem
        raise click.UsageError(f"{exc.origin}: {'; '.join(exc.problems)}") from None
    try:
        document = compute_vectors(binding)
    except ValueError as exc:  # a value the loader's types admit but no derivation can use, e.g. an unknown input
        raise click.UsageError(f"the binding cannot be evaluated: {exc}") from None
    click.echo(to_json(document) if as_json else to_yaml(document), nl=False)


port_option = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="UDP port of the EMSDP flows (default: the SUT's port in the run folder's compliance.json when the pcap "
    "lies in one, else the binding's transport.udp_port).",
)


def _reading_binding(binding_files: tuple[str, ...], port: int | None, run_dir: Any) -> Binding:
    """The binding to read a capture with: --binding files, else the run folder's binding and SUT port (an
    embedded reference listens on a free port), and --port over either."""
    from conformance.report.compliance import ComplianceError, run_binding

    if run_dir is not None and not binding_files:
        try:
            overrides, run_port = run_binding(run_dir)
        except ComplianceError as exc:
            raise click.UsageError(str(exc)) from None
        if port or run_port:
            overrides["transport.udp_port"] = port or run_port
        return load_binding(overrides)
    binding = _binding(binding_files)
    return load_binding(*binding_files, {"transport.udp_port": port}) if port else binding


def _run_folder_of(pcap: str) -> Any:
    """The run folder a pcap lies in (reports/<run-id>/pcaps/<CASE>.pcap), or None."""
    from pathlib import Path

    folder = Path(pcap).resolve().parent.parent
    return folder if Path(pcap).resolve().parent.name == "pcaps" and (folder / "compliance.json").is_file() else None


@cli.command()
@click.argument("pcap", type=click.Path(dir_okay=False))
@binding_option
@port_option
@click.option(
    "--counter-scheme",
    type=int,
    help="Counter scheme of flows before their Session Start (default: the binding's emsdp.counters.default_scheme).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per message.")
def dissect(
    pcap: str, binding_files: tuple[str, ...], port: int | None, counter_scheme: int | None, as_json: bool
) -> None:
    """Decode every EMSDP message of a pcap (UDP to or from the SUT's port), one block per message. A pcap of a
    run folder is read with that run's binding and SUT port."""
    from conformance.capture.reader import TraceError
    from conformance.emsdp.codec import Codec
    from conformance.emsdp.trace import read_trace, render_text

    codec = Codec(_reading_binding(binding_files, port, _run_folder_of(pcap)))
    if counter_scheme is not None and counter_scheme not in codec.layout.schemes:
        raise click.BadParameter(f"must be one of {list(codec.layout.schemes)}", param_hint="'--counter-scheme'")
    try:
        messages = list(read_trace(pcap, codec, counter_scheme))
    except TraceError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps([m.to_dict(codec) for m in messages], indent=2))
        return
    for message in messages:
        click.echo(render_text(message, codec) + "\n")
    flagged = sum(1 for m in messages if m.packet.problems)
    click.echo(f"{len(messages)} EMSDP message(s) on UDP port {codec.layout.udp_port}, {flagged} with problems")


@cli.command("wireshark-dissector")
@binding_option
@port_option
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, exists=True),
    help="A run folder: the dissector for its binding and its SUT's port.",
)
def wireshark_dissector(binding_files: tuple[str, ...], port: int | None, run_dir: str | None) -> None:
    """Print a Wireshark Lua dissector for EMSDP generated from the binding (save it as emsdp.lua)."""
    from pathlib import Path

    from conformance.emsdp.layout import Layout
    from conformance.emsdp.wireshark import lua_dissector

    binding = _reading_binding(binding_files, port, Path(run_dir) if run_dir else None)
    click.echo(lua_dissector(Layout.from_binding(binding)), nl=False)


@cli.command()
@click.argument("kind", type=click.Choice(SUT_KINDS))
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False),
    help="SUT profile describing the reference SUT (default: profiles/reference-<kind>.yaml shipped with the harness).",
)
@click.option(
    "--port", type=int, help="HSE, EMSE: UDP port (default: the profile's, else the binding's); UE: its own (free)."
)
@click.option("--rest-port", type=int, help="Key-server HTTPS port (default: the profile's key_server URL's).")
@click.option("--key-server", help="EMSE: the EMKS to register with (default: the profile's key_server URL).")
@click.option("--pid-file", type=click.Path(dir_okay=False), help="Write the process id here (for triggers).")
@click.option(
    "--certs",
    "certs_dir",
    type=click.Path(file_okay=False),
    help="Folder of the certificates (CA, server, clients): reused while valid, made when missing "
    "(default: certs/reference-<kind>/ in the user's cache directory).",
)
@click.option(
    "--provision-inbox",
    type=click.Path(dir_okay=False),
    help="EMKS: on SIGUSR1, take every line 'UE_ID RAND' (RAND in hex) appended to this file since the last "
    "signal as a new AKA run of that PIXIT subscriber, and push its key to the subscribed clients.",
)
@click.option(
    "--hse", "hse", help="UE: HOST:PORT where the harness's HSE listens (default: the profile's endpoints.hse)."
)
@click.option(
    "--command-inbox",
    type=click.Path(dir_okay=False),
    help="UE: on SIGUSR1, run every line appended to this file since the last signal: session, send_data HEX, "
    "manage_keys or terminate.",
)
@click.option("--fault", "faults", multiple=True, help="Switch on a fault of the catalogue (repeatable).")
def serve(
    kind: str,
    profile_path: str | None,
    port: int | None,
    rest_port: int | None,
    key_server: str | None,
    pid_file: str | None,
    certs_dir: str | None,
    provision_inbox: str | None,
    hse: str | None,
    command_inbox: str | None,
    faults: tuple[str, ...],
) -> None:
    """Run a reference SUT as a standalone server, logging every exchange, until interrupted (Ctrl-C, SIGTERM).

    Its certificates (a CA, the server's and clients') are made on first use in the user's cache directory
    (or --certs); peers trust the CA and present client certificates from there.

    \b
    Triggers, for a profile's pixit.triggers (PID: the --pid-file's content):
      EMSE: it registers with its EMKS on start; SIGUSR1 registers again, SIGUSR2 deregisters:
        register: "kill -USR1 $(cat emse.pid)"    deregister: "kill -USR2 $(cat emse.pid)"
      EMKS, with --provision-inbox FILE: SIGUSR1 provisions the lines appended to FILE:
        provision: "echo {ue_id} {rand} >> FILE && kill -USR1 $(cat emks.pid)"
      UE, with --command-inbox FILE: SIGUSR1 runs the lines appended to FILE (session, send_data HEX,
      manage_keys, terminate):
        send_data: "echo send_data {data} >> FILE && kill -USR1 $(cat ue.pid)"

    A dead fault logs the moment it died, e.g. "reference HSE died at 1764590400.123456 (epoch s), fault
    hse_hangs_after_setup: ..."; with hse_exits_on_malformed the process then exits with status 70.
    """
    import logging

    from conformance.reference.process import banner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if provision_inbox and kind != "emks":
        raise click.UsageError("--provision-inbox is for an EMKS")
    _check_ue_options(kind, hse, command_inbox, rest_port=rest_port, key_server=key_server, certs_dir=certs_dir)
    service, chosen = _start_reference(
        kind,
        profile_path,
        faults,
        port=port,
        rest_port=rest_port,
        key_server=key_server,
        certs_dir=certs_dir,
        provision_inbox=provision_inbox,
        hse=_host_port(hse) if hse else None,
        command_inbox=command_inbox,
    )
    _serve_until_interrupted(service, pid_file, banner(kind, service, chosen))


def _check_ue_options(kind: str, hse: str | None, command_inbox: str | None, **others: Any) -> None:
    """A UE takes --hse and --command-inbox, and none of the key-server options; no other kind takes those two."""
    if kind != "ue":
        for option, value in (("--hse", hse), ("--command-inbox", command_inbox)):
            if value:
                raise click.UsageError(f"{option} is for a UE")
        return
    for name, value in others.items():
        if value is not None:
            raise click.UsageError(
                f"--{name.replace('_', '-').removesuffix('-dir')} is not for a UE: it has no key server"
            )


def _host_port(text: str) -> tuple[str, int]:
    """--hse HOST:PORT, or a usage error saying how to write it."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.UsageError(f"--hse takes HOST:PORT (port 1 to 65535), e.g. 127.0.0.1:4500; not {text!r}")
    return host, int(port)


def _start_reference(
    kind: str,
    profile_path: str | None,
    faults: tuple[str, ...],
    *,
    port: int | None,
    rest_port: int | None,
    key_server: str | None,
    certs_dir: str | None,
    provision_inbox: str | None,
    hse: tuple[str, int] | None = None,
    command_inbox: str | None = None,
) -> tuple[Any, frozenset[str]]:
    """The reference SUT of `serve`, listening, with its faults; SIGTERM then stops it as Ctrl-C does. A bad
    profile or fault, or a port in use, is bad input (exit 2), not a traceback."""
    import signal

    from conformance.faults import UnknownFault, parse_faults
    from conformance.keyserver.certs import CertificateDirectory
    from conformance.profile import ProfileError, load_profile, shipped_profile

    try:
        profile = load_profile(profile_path or str(shipped_profile(f"reference-{kind}.yaml")))
        chosen = parse_faults(faults)
        if profile.sut.kind != kind:
            raise click.UsageError(f"{profile.path}: sut.kind is {profile.sut.kind!r}, not {kind!r}")
        certs = CertificateDirectory(certs_dir) if certs_dir else None
        if kind == "ue":
            service: Any = _reference_ue(profile, chosen, port, hse, command_inbox)
        else:
            service = _reference_service(kind, profile, chosen, port, rest_port, key_server, certs, provision_inbox)
        signal.signal(signal.SIGTERM, _interrupt)  # a clean stop, as with Ctrl-C
        service.__enter__()
    except (ProfileError, UnknownFault) as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(
            f"cannot listen on {exc.strerror or exc}; give another port (--port, --rest-port)"
        ) from None
    return service, chosen


def _reference_service(
    kind: str,
    profile: Any,
    chosen: frozenset[str],
    port: int | None,
    rest_port: int | None,
    key_server: str | None,
    certs: Any,
    provision_inbox: str | None,
) -> Any:
    """The service of one kind, not yet started, wired to the process: an HSE's exit fault exits `serve`, an
    EMKS and an EMSE answer their trigger signals."""
    from pathlib import Path

    from conformance.reference.services import ReferenceEmksService, ReferenceEmseService, ReferenceHseService

    if kind == "hse":
        hse = ReferenceHseService(profile, chosen, udp_port=port, rest_port=rest_port, certs=certs)
        hse.on_exit = _exit_now
        return hse
    if kind == "emks":
        emks = ReferenceEmksService(profile, chosen, rest_port=rest_port, certs=certs)
        if provision_inbox:
            _provision_signal(emks, Path(provision_inbox))
        return emks
    url = key_server or profile.endpoints.key_server
    if not url:
        raise click.UsageError("an EMSE needs the EMKS to register with: --key-server URL")
    emse = ReferenceEmseService(profile, url, chosen, dtls_port=port, certs=certs)
    _emse_signals(emse)
    return emse


def _reference_ue(
    profile: Any, chosen: frozenset[str], port: int | None, hse: tuple[str, int] | None, inbox: str | None
) -> Any:
    """The reference UE of `serve ue`, not yet started, running the command lines of its inbox on SIGUSR1."""
    from pathlib import Path

    from conformance.reference.services import ReferenceUeService

    ue = ReferenceUeService(profile, chosen, hse=hse, port=port)
    if inbox:
        _inbox_signal(Path(inbox), ue.client.command, "run")
    return ue


def _serve_until_interrupted(service: Any, pid_file: str | None, announcement: str) -> None:
    """The service answers on its own threads; this one writes the pid file, announces where it listens, and
    waits for Ctrl-C or SIGTERM, then stops the service and removes the pid file. The announcement comes inside
    the wait, so that a peer that stops us as soon as it reads it finds us stopping cleanly."""
    import os
    import time
    from pathlib import Path

    try:
        if pid_file:
            Path(pid_file).write_text(f"{os.getpid()}\n", encoding="ascii")
        click.echo(announcement, err=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        service.__exit__(None, None, None)
        if pid_file:
            Path(pid_file).unlink(missing_ok=True)  # the process is gone: its pid no longer names it


EXIT_DIED = 70  # `serve`: the reference exited on purpose (fault hse_exits_on_malformed), as a crashing SUT would


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _exit_now() -> None:
    """Fault hse_exits_on_malformed under `serve`: the process exits at once, as a crashing SUT does."""
    import logging
    import os

    logging.getLogger("best-conformance.reference").warning("reference HSE exits with status %d", EXIT_DIED)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_DIED)


def _provision_signal(service: Any, inbox: Any) -> None:
    """SIGUSR1: provision each line 'UE_ID RAND' appended to the inbox since the last signal (on a thread)."""

    def provision(line: str) -> str:
        ue_id, rand = line.split()
        service.provision(ue_id, rand)
        return f"provisioned {ue_id} RAND {rand}"

    _inbox_signal(inbox, provision, "provision")


def _inbox_signal(inbox: Any, act: Any, verb: str) -> None:
    """SIGUSR1: `act` on each line appended to the inbox since the last signal, in order, on a thread (the handler
    must return at once); `act` says what it did, for the log. A bad line is logged, never the end of the reference."""
    import logging
    import signal
    import threading

    log = logging.getLogger("best-conformance.reference")
    inbox.touch()
    state = {"offset": inbox.stat().st_size}  # lines written before the EMKS started are not new runs
    lock = threading.Lock()

    def take() -> None:
        with lock:  # signals that come together: each line once, in order
            with inbox.open("rb") as lines:
                lines.seek(state["offset"])
                text = lines.read()
            complete = text[: text.rfind(b"\n") + 1]  # a line still being written waits for the next signal
            state["offset"] += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                if not line.strip():
                    continue
                try:
                    log.info("%s from %s", act(line), inbox)
                except Exception as exc:
                    log.warning("cannot %s %r from %s: %s", verb, line, inbox, exc)

    signal.signal(signal.SIGUSR1, lambda _signum, _frame: threading.Thread(target=take, daemon=True).start())


def _emse_signals(service: Any) -> None:
    """SIGUSR1: register again; SIGUSR2: deregister (run on a thread: the handler must return at once)."""
    import signal
    import threading

    def on(action: Any) -> Any:
        return lambda _signum, _frame: threading.Thread(target=action, daemon=True).start()

    signal.signal(signal.SIGUSR1, on(service.emse.register))
    signal.signal(signal.SIGUSR2, on(service.emse.deregister))


@cli.command()
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False),
    help="SUT profile. Default: the embedded reference HSE (profiles/reference-hse.yaml).",
)
@click.option(
    "--reference/--no-reference",
    default=None,
    help="Start the reference SUT the profile describes, embedded (default: only without --profile).",
)
@click.option(
    "--all",
    "all_kinds",
    is_flag=True,
    help=f"Every kind's suite ({', '.join(SUT_KINDS)}) against its embedded reference, the kinds in parallel, into "
    "one folder: reports/<run-id>/<kind>/ and runs.json. Exit 0 only when every kind's decision is pass.",
)
@click.option("--fault", "faults", multiple=True, help="With the embedded reference: switch on a fault (repeatable).")
@click.option("-k", "keyword", help="Only cases matching this pytest -k expression (e.g. 'SR or EAS').")
@click.option("--reports", default="reports", show_default=True, help="Folder for the run's reports.")
@click.option("-n", "workers", type=int, help="Run cases in N parallel workers (pytest-xdist).")
@click.option(
    "--reveal-secrets",
    is_flag=True,
    help="Write K, OP/OPc and derived keys in clear into the reports (default: masked, e.g. "
    "'•••• (sha256 3f2a9c1b…, 16 octets)'), and keep DTLS key logs.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False),
    help="Expected failures of this SUT (YAML, each with a reason): exit 0 unless a failure is new; see README.",
)
@click.option("--strict-baseline", is_flag=True, help="With --baseline: a case that now passes also exits 1.")
@click.option(
    "--stop-after",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help="When N cases in a row get no answer at all from the SUT, mark the rest 'not run' at once (default 5; "
    "0: never stop early).",
)
@click.option(
    "--case-file",
    "case_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Run the cases of this YAML file instead of the kind's suite (repeatable), e.g. a fuzz finding "
    "(reports/fuzz-*/findings/*.yaml).",
)
def run(
    profile_path: str | None,
    reference: bool | None,
    all_kinds: bool,
    faults: tuple[str, ...],
    keyword: str | None,
    reports: str,
    workers: int | None,
    reveal_secrets: bool,
    baseline: str | None,
    strict_baseline: bool,
    stop_after: int | None,
    case_files: tuple[str, ...],
) -> None:
    """Run every applicable conformance case and write reports/<run-id>/: results.jsonl, junit.xml,
    allure-results/, one pcap per case, compliance.json and report.html.

    Exit code: 0 the decision is pass (every applicable shall case ran and passed), 1 it is not (a case failed,
    was inconclusive or did not run, or the run left cases out), 2 bad input, 3 a harness error.
    With --baseline: 0 when every failure is an expected one, 1 on a new failure (see README).
    """
    from conformance.profile import shipped_profile
    from conformance.pytest_plugin import HARNESS_CA  # before pytest loads it as a plugin, as it always was
    from conformance.run import RunError, RunOptions, execute

    options = RunOptions(
        profile=profile_path or str(shipped_profile("reference-hse.yaml")),
        embedded=reference if reference is not None else profile_path is None,
        faults=faults,
        keyword=keyword,
        reports=reports,
        workers=workers,
        reveal_secrets=reveal_secrets,
        baseline=baseline,
        strict_baseline=strict_baseline,
        stop_after=stop_after,
        case_files=case_files,
    )
    if all_kinds:
        if case_files:
            raise click.UsageError("--all runs every kind's suite: leave out --case-file")
        if profile_path or reference is False:
            raise click.UsageError("--all runs the shipped reference profiles: leave out --profile and --no-reference")
        _run_all(options)
    try:
        run_dir, outcome = execute(options)
    except RunError as exc:
        raise click.UsageError(str(exc)) from None
    console = _console(stderr=True)
    _print_run_summary(run_dir, outcome, run_dir / HARNESS_CA, console)
    if baseline and outcome.results:
        from conformance.baseline import report_run

        sys.exit(report_run(run_dir, strict_baseline, console))
    sys.exit(outcome.code)


@cli.command()
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False),
    help="SUT profile (an HSE for emsdp). Default: the embedded reference HSE (profiles/reference-hse.yaml).",
)
@click.option(
    "--reference/--no-reference",
    default=None,
    help="Fuzz the reference SUT the profile describes, embedded (default: only without --profile); it is "
    "restarted after a crash, so a crash shrinks like any finding.",
)
@click.option("--fault", "faults", multiple=True, help="With the embedded reference: switch on a fault (repeatable).")
@click.option(
    "--examples", type=click.IntRange(1), help="Examples per interface (default: each fuzzer's, e.g. emsdp 60)."
)
@click.option(
    "--time", "seconds", type=click.FloatRange(min=0, min_open=True), help="Or a budget in seconds per interface."
)
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same examples.")
@click.option(
    "--interface",
    type=click.Choice(["emsdp", "key_server", "all"]),
    default="emsdp",
    show_default=True,
    help="What to fuzz: the HSE's EMSDP, the key server, or both.",
)
@click.option("--reports", default="reports", show_default=True, help="Folder under which fuzz-<timestamp>/ goes.")
def fuzz(
    profile_path: str | None,
    reference: bool | None,
    faults: tuple[str, ...],
    examples: int | None,
    seconds: float | None,
    seed: int,
    interface: str,
    reports: str,
) -> None:
    """Robustness testing of the SUT with Hypothesis (TS 33.117's fuzz testing): stateful, structure-aware fuzzing
    of each interface; every failure shrunk to a minimal sequence and written as a case, replayable with
    `run --case-file`. Writes the run folder reports/fuzz-<timestamp>/: report.html and compliance.json (their
    robustness section), results.jsonl and pcaps/ (each finding replayed as its case), findings/<interface>-<n>.yaml,
    fuzz.json, hypothesis-db/ (the same seed replays).

    Exit code: 0 no finding, 1 findings, 2 bad input, 3 not started (the SUT did not serve before fuzzing) or a
    harness error."""
    import datetime
    from pathlib import Path

    from conformance.profile import ProfileError, load_profile, shipped_profile

    if examples is not None and seconds is not None:
        raise click.UsageError("give --examples or --time, not both")
    embedded = reference if reference is not None else profile_path is None
    if faults and not embedded:
        raise click.UsageError("--fault switches on a fault of the embedded reference: add --reference")
    try:
        from conformance.faults import parse_faults

        parse_faults(faults)
        profile = load_profile(Path(profile_path) if profile_path else shipped_profile("reference-hse.yaml"))
    except (ValueError, OSError, ProfileError) as exc:
        raise click.UsageError(str(exc)) from None
    interfaces = ["emsdp", "key_server"] if interface == "all" else [interface]
    if "emsdp" in interfaces and profile.sut.kind != "hse":
        raise click.UsageError(f"--interface emsdp fuzzes an HSE; the profile's SUT is {profile.sut.kind}")
    run_dir = Path(reports) / f"fuzz-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=False)
    console = _console(stderr=True)
    import contextlib

    from conformance.fuzz.campaign import Budget
    from conformance.fuzz.findings import FuzzSetupError
    from conformance.run import fuzz_campaign

    with contextlib.suppress(ImportError):  # Hypothesis's own files go into the run folder, not the user's cwd
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(str(run_dir / "hypothesis-db"))
    budget = Budget(examples, seconds, seed)
    try:
        found = fuzz_campaign(
            profile, run_dir, interfaces, budget, embedded=embedded, faults=frozenset(faults), profile_file=profile_path
        )
    except FuzzSetupError as exc:
        console.print(f"fuzz: not started: {exc}", highlight=False)
        sys.exit(EXIT_HARNESS)
    for report in found:
        console.print(
            f"{report.interface}: {report.examples} examples in {report.seconds:.1f} s "
            f"({report.examples_per_second:.1f}/s), seed {seed}: {len(report.findings)} finding(s)"
            + (f", {len(report.unconfirmed)} not reproduced" if report.unconfirmed else ""),
            highlight=False,
        )
        for finding in report.findings:
            console.print(f"  {finding.oracle}: {finding.summary}", highlight=False)
    console.print(f"fuzz: {run_dir}/report.html, compliance.json, fuzz.json, findings/", highlight=False)
    sys.exit(EXIT_FAIL if any(r.findings for r in found) else EXIT_PASS)


def _run_all(options: Any) -> None:
    """`run --all`: each kind's summary, then the one decision over all of them; exits."""
    from conformance.pytest_plugin import HARNESS_CA
    from conformance.run import RunError, all_code, execute_all

    console = _console(stderr=True)
    try:
        parent, runs = execute_all(options)
    except RunError as exc:
        raise click.UsageError(str(exc)) from None
    for kind_run in runs:
        if kind_run.outcome is None:
            console.print(f"{kind_run.kind}: not run: {kind_run.skipped}", highlight=False)
            continue
        console.rule(kind_run.kind.upper())
        _print_run_summary(kind_run.run_dir, kind_run.outcome, kind_run.run_dir / HARNESS_CA, console)
    code = all_code(runs)
    passed = sum(r.code == EXIT_PASS for r in runs)
    word = "PASS" if code == EXIT_PASS else "FAIL"
    console.print(f"decision over all kinds: {word}: {passed} of {len(runs)} kinds pass; {parent}/runs.json")
    sys.exit(code)


def _print_run_summary(run_dir: Any, outcome: Any, harness_ca: Any, console: Any) -> None:
    """After the live progress: the cases that did not pass, the decision and counts, then what the lab must
    act on (trust the harness's CA, when the run used it) and where the reports are."""
    _print_not_passed(outcome.results, console)
    for line in outcome.lines:
        console.print(line, highlight=False)
    if harness_ca.exists():
        console.print(
            f"pushes: the harness's push receiver presented a certificate of its own CA ({harness_ca}): "
            "the SUT must trust it (or give tls.receiver in the profile)"
        )
    if outcome.results:
        console.print(f"report: {run_dir}/report.html")
        console.print(
            f"also in {run_dir}/: compliance.json, results.jsonl, junit.xml, allure-results/, pcaps/, traces/"
        )


def _print_not_passed(results: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    not_passed = [r for r in results if r["verdict"] not in ("pass", "not applicable")]
    if not_passed:
        table = Table(title="Cases that did not pass", title_justify="left")
        for column in ("case", "verdict", "reason"):
            table.add_column(column, overflow="fold")
        for r in sorted(not_passed, key=lambda r: r["case"]):
            table.add_row(r["case"], r["verdict"], r["reason"])
        console.print(table)


@cli.command()
@click.option(
    "--profile",
    "profile_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The SUT's profile (an HSE): its endpoint, PIXIT subscribers and the binding the harness reads.",
)
@click.option(
    "--pcap",
    "pcaps",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Offline: a capture of exchanges with the SUT (repeatable). Without it the probe talks to the SUT.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Offline: the SUT's UDP port in the capture (default: the profile's HSE port).",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="Live: at most this many sessions.",
)
@click.option(
    "--reports", default="reports", show_default=True, help="Folder under which probe-<timestamp>/ is written."
)
@click.option("--json", "as_json", is_flag=True, help="Print probe.json instead of the table.")
def probe(
    profile_path: str, pcaps: tuple[str, ...], port: int | None, max_sessions: int, reports: str, as_json: bool
) -> None:
    """Find the binding an HSE speaks: which of the binding's alternatives (default.yaml `alternatives:`) its
    messages fit, offline from --pcap captures or live in a few short sessions. Writes
    reports/probe-<timestamp>/ (binding-override.yaml, probe.json, report.md, and live.pcap when live).

    Exit code: 0 a consistent binding (with differences or not), 1 a message contradicts every candidate, 2 bad
    input, 3 the SUT could not be reached.
    """
    from conformance.capture.reader import TraceError
    from conformance.probe.report import print_table, probe_folder, write_outputs

    profile = _load_profile(profile_path)
    if profile.sut.kind != "hse":
        raise click.UsageError(f"the probe speaks EMSDP to an HSE; {profile_path} describes a {profile.sut.kind}")
    folder = probe_folder(reports)
    console = _console(stderr=as_json)
    if pcaps:
        from conformance.probe.offline import probe_captures

        try:
            result = probe_captures(pcaps, profile, port=port)
        except TraceError as exc:
            raise click.UsageError(str(exc)) from None
    else:
        from conformance.probe.live import ProbeAborted, probe_live

        try:
            result = probe_live(profile, folder, max_sessions=max_sessions, say=lambda text: console.print(text))
        except ProbeAborted as exc:
            console.print(f"[red]{exc}[/red]")
            sys.exit(EXIT_HARNESS)
    paths = write_outputs(result, folder)
    if as_json:
        click.echo(paths["json"].read_text(encoding="utf-8"), nl=False)
    else:
        print_table(result, console)
        console.print(f"written: {paths['override']}, {paths['json'].name}, {paths['report'].name}")
    sys.exit(EXIT_PASS if result.consistent else EXIT_FAIL)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--allure", "with_allure", is_flag=True, help="Also render allure-results/ with Allure 3 (npm).")
def report(run_dir: str, with_allure: bool) -> None:
    """Render RUN_DIR/report.html again from RUN_DIR/compliance.json; with --allure, also RUN_DIR/allure-report/.

    Exit code: 0 rendered (a missing Allure is reported, not an error), 2 RUN_DIR is not a run folder,
    3 Allure was found but failed.
    """
    from pathlib import Path

    from conformance.report.html import ReportError, write_report

    try:
        click.echo(f"report: {write_report(Path(run_dir))}")
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None
    if with_allure:
        from conformance.report.allure_report import render_allure

        outcome = render_allure(Path(run_dir), f"BEST conformance run {Path(run_dir).resolve().name}")
        click.echo(outcome.message, err=outcome.report is None)
        if not outcome.ok:
            sys.exit(EXIT_HARNESS)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", default=".", show_default=True, type=click.Path(file_okay=False), help="Folder to write into.")
def matrix(run_dirs: tuple[str, ...], out: str) -> None:
    """Interop matrix of several runs (SUTs x test groups) as OUT/matrix.html and OUT/matrix.md."""
    from pathlib import Path

    from conformance.report.html import ReportError
    from conformance.report.matrix import write_matrix

    try:
        written = write_matrix([Path(d) for d in run_dirs], Path(out))
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo("matrix: " + ", ".join(str(p) for p in written))


@cli.command("list")
@click.option("--kind", type=click.Choice(SUT_KINDS), default="hse", show_default=True)
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False), help="Show applicability for this SUT.")
def list_cases(kind: str, profile_path: str | None) -> None:
    """List the conformance cases with their refs and applicability."""
    from rich.table import Table

    from conformance.engine.runner import applicable

    cases = _cases(kind)
    profile = _load_profile(profile_path) if profile_path else None
    table = Table(title=f"{len(cases)} {kind.upper()} cases", title_justify="left")
    for column in ("case", "level", "title", "refs", "applies"):
        table.add_column(column, overflow="fold")
    for case in cases:
        applies = " and ".join(case.pics) or "always"
        if profile is not None:
            reason = applicable(case, profile)
            applies = "yes" if reason is None else f"no: {reason}"
        table.add_row(case.id, case.level, case.title, ", ".join(case.refs), applies)
    _console().print(table)


@cli.command()
@click.argument("case_id")
def explain(case_id: str) -> None:
    """Print one case: purpose, refs, applicability and each step with what its verb and matchers do."""
    from conformance.engine.matchers import MATCHERS
    from conformance.engine.verbs import VERBS

    case = next((c for kind in SUT_KINDS for c in _cases(kind) if c.id == case_id), None)
    if case is None:
        raise click.UsageError(f"no case {case_id!r}; `best-conformance list` shows them")
    click.echo(f"{case.id}: {case.title}\n  level: {case.level}   refs: {', '.join(case.refs)}")
    click.echo(f"  applies to: {case.sut}" + (f" claiming {' and '.join(case.pics)}" if case.pics else ""))
    if case.purpose:
        click.echo(f"  purpose: {case.purpose}")
    if case.rests_on:
        click.echo(f"  rests on binding values: {', '.join(case.rests_on)}")
    click.echo(f"  defined at {case.location}\n  steps:")
    for number, step in enumerate(case.steps, 1):
        options = {k: v for k, v in step.args.items() if k not in ("_value", "check")}
        click.echo(f"   {number}. {step.verb} {step.args.get('_value') or ''} {options or ''}".rstrip())
        click.echo(f"      {_first_sentence(VERBS.get(step.verb))}")
        for name, expected in (step.args.get("check") or {}).items():
            click.echo(f"      check {name} = {expected}: {_first_sentence(MATCHERS.get(name))}")


@cli.command()
@click.option("--sut", type=click.Choice(SUT_KINDS), help="Only the requirements and cases of one SUT kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def coverage(sut: str | None, as_json: bool) -> None:
    """Every requirement of the ledger (conformance/requirements/): level, clause, and whether cases check it
    (which) or why not (out_of_scope, untestable, needs_pics, binding_unknown, not_covered), with totals."""
    from conformance.report.coverage import SuiteError, compute, render, shipped_cases
    from conformance.requirements import LedgerError

    try:
        result = compute(shipped_cases(), sut)
    except (LedgerError, SuiteError) as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return

    render(result, _console())


def _console(*, stderr: bool = False) -> Any:
    """A rich console; piped into a file or another program it is wide, so tables do not fold at 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, 200)
    return console


def _first_sentence(fn: Any) -> str:
    if fn is None:
        return "(unknown)"
    import re

    text = " ".join((fn.__doc__ or "").split())  # a sentence ends at a full stop before a capital, not at "e.g."
    return re.split(r"(?<!\be\.g)(?<!\bi\.e)\.\s+(?=[A-Z])", text)[0].rstrip(".") + "."


def _cases(kind: str) -> list[Any]:
    from conformance.engine.lint import load_suite
    from conformance.engine.model import suite_dir

    directory = suite_dir(kind)
    if not directory.is_dir():
        return []
    cases, report = load_suite(directory.glob("*.yaml"))
    if report.errors:
        raise click.UsageError("suite lint errors:\n" + "\n".join(report.errors))
    return cases


@cli.command("harness-ca")
@click.option("--out", type=click.Path(dir_okay=False), help="Also copy the CA certificate (PEM) here.")
def harness_ca(out: str | None) -> None:
    """Print where the harness's own CA certificate is (made on first use in the user's cache).

    A profile without `tls.receiver` gets a push-receiver certificate from this CA: configure the key server under
    test to trust it before the run, or the pushes it sends the harness cannot be received.
    """
    import shutil

    from conformance.keyserver.certs import harness_certificates

    ca = harness_certificates().ca
    if out:
        shutil.copyfile(ca, out)
        click.echo(f"harness CA certificate: {ca} (copied to {out})")
    else:
        click.echo(f"harness CA certificate: {ca}")


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Private key file (default: the lab key, see sign).")
@click.option("--force", is_flag=True, help="Replace an existing key.")
def keygen(out: str | None, force: bool) -> None:
    """Make an Ed25519 signing key: the private key (PEM, mode 0600) at --out, its public key at --out.pub."""
    from pathlib import Path

    from conformance.report import signing

    try:
        private, public, fingerprint = signing.keygen(Path(out) if out else signing.default_key_path(), force=force)
    except (signing.SigningError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"private key: {private} (keep it; mode 0600)\npublic key:  {public}\nfingerprint: {fingerprint}")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--key",
    type=click.Path(dir_okay=False),
    help="Ed25519 private key (PEM). Default: the lab key in the user's config directory, made on first use.",
)
def sign(run_dir: str, key: str | None) -> None:
    """Sign a run folder: RUN_DIR/signature.json covers compliance.json (canonical JSON, per case and per field)
    and the sha256 of every other file. Exit code: 0 signed, 2 bad input."""
    from pathlib import Path

    from conformance.report import signing

    try:
        path = Path(key) if key else signing.default_key_path()
        if key is None and not path.exists():
            _, public, fingerprint = signing.keygen(path)
            click.echo(f"created the lab signing key {path} (public key {public}, {fingerprint})", err=True)
        private = signing.load_private_key(path)
        out = signing.sign(Path(run_dir), private)
    except (signing.SigningError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"signed: {out} with {path} ({signing.fingerprint(private.public_key())})")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--public-key", type=click.Path(dir_okay=False), help="The signer's public key (PEM) to trust.")
def verify(run_dir: str, public_key: str | None) -> None:
    """Check a signed run folder: the signature, every file's digest, every case of compliance.json, and its
    schema; name each thing altered. Exit code: 0 valid, 1 altered, 2 bad input."""
    from pathlib import Path

    from conformance.report import signing

    try:
        trusted = signing.load_public_key(Path(public_key)) if public_key else None
        outcome = signing.verify(Path(run_dir), trusted)
    except signing.SigningError as exc:
        raise click.UsageError(str(exc)) from None
    for line in outcome.altered:
        click.echo(f"ALTERED {line}")
    for line in outcome.notes:
        click.echo(f"note: {line}", err=True)
    if not outcome.valid:
        click.echo(f"{run_dir}: NOT VALID: {len(outcome.altered)} difference(s) from what {outcome.signer} signed")
        sys.exit(EXIT_FAIL)
    click.echo(
        f"{run_dir}: valid: signed by {outcome.signer} at {outcome.signed_at}; "
        f"compliance.json ({outcome.cases} case{'' if outcome.cases == 1 else 's'}) and {outcome.files} files "
        "unchanged"
    )


@cli.command("selftest")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(SUT_KINDS),
    help="Only this reference SUT kind (repeatable). Default: every kind that ships a reference profile and a suite.",
)
@click.option("--fault", "faults", multiple=True, help="Only this catalogue fault (repeatable). Default: all.")
@click.option("--case", "patterns", multiple=True, help="Only cases whose id matches this glob, e.g. 'HSE-SR-*'.")
@click.option(
    "-j",
    "workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Workers, each running 7 slices at once (selftest.SLICES_PER_WORKER), in processes of their own: a "
    "slice mostly waits for its reference. -j 2 keeps about two thirds of two cores busy.",
)
@click.option("--reports", default="reports", show_default=True, help="Where the selftest-<timestamp>/ folder goes.")
@click.option("--json", "as_json", is_flag=True, help="Print the detection matrix as JSON instead of a table.")
@click.option(
    "--path",
    "path",
    type=click.Choice(["embedded", "external", "both"]),
    default="both",
    show_default=True,
    help="embedded: the reference in the selftest's process; external: the path labs use, the reference as its "
    "own process (`serve`) reached through a profile written as a lab writes it.",
)
def selftest_command(
    kinds: tuple[str, ...],
    faults: tuple[str, ...],
    patterns: tuple[str, ...],
    workers: int,
    reports: str,
    as_json: bool,
    path: str,
) -> None:
    """Prove the suites on the reference SUTs: the conformant reference must pass every applicable case, and
    every catalogued fault must make at least one case fail (only warnings are a hole, unless the fault breaks
    a should/may requirement only). A dead fault (the SUT hangs, exits or stops answering) must make the
    decision fail, and no negative case may pass after the SUT died.
    On the external path the conformant run of a whole suite is `best-conformance run --profile lab.yaml`,
    which must exit 0.
    Writes selftest.json (the detection matrix) and each run's results and pcaps.

    Exit code: 0 all caught and the conformant runs passed, 1 a hole, a false pass, a missed expected catcher
    or a conformant case that did not pass, 2 bad input, 3 a harness error.
    """
    from conformance.selftest import PATHS, SelftestError, run_command

    paths = PATHS if path == "both" else (path,)
    try:
        sys.exit(run_command(kinds, faults, patterns, workers, reports, as_json, paths))
    except SelftestError as exc:
        raise click.UsageError(str(exc)) from None


def _load_profile(path: str) -> Any:
    from conformance.profile import ProfileError, load_profile

    try:
        return load_profile(path)
    except ProfileError as exc:
        raise click.UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input of any kind is one line on stderr and exit code 2, never a traceback."""
    try:
        code = cli.main(args=argv, prog_name="best-conformance", standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"best-conformance: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except BindingError as exc:
        click.echo(f"best-conformance: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.Abort:
        click.echo("best-conformance: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


from conformance.load.command import load  # noqa: E402  (appended: `best-conformance load`, issue 18)

cli.add_command(load)


if __name__ == "__main__":
    main()
