"""The fault catalogue: named, documented deviations a real implementation could plausibly have.

Its own room, below the profile (which names faults for an embedded reference) and the reference SUTs (which
switch them on by name, from the profile or the command line). `best-conformance selftest` runs the suites
against every fault: a fault no case catches is a hole in the suites.

The catalogue is data, `faults.yaml` beside this module (shipped as package data): every fault with what it does,
the interfaces it kills if any, the cases that must catch it and whether a warning suffices. It is read and checked
once, on import; a wrong entry raises CatalogueError naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from conformance.yaml_lines import LineLoader

INTERFACES = ("emsdp", "key_server", "dtls")  # what a dead fault can kill: HSE/UE UDP, HTTPS key server, EMSE DTLS
FUZZ_INTERFACES = ("emsdp", "key_server")  # what `best-conformance fuzz` fuzzes (found_by)
LOAD = "load"  # found_by: `best-conformance load` finds it (a fault that shows only under concurrent sessions)
FINDERS = (*FUZZ_INTERFACES, LOAD)  # what found_by may list
COMPONENTS = ("hse", "keyserver", "emse", "ue")
LAYERS = ("codec", "protocol", "crypto", "keyserver", "dead")
CATALOGUE_FILE = "faults.yaml"


@dataclass(frozen=True)
class Fault:
    name: str
    component: str  # hse | keyserver | emse | ue
    layer: str  # codec | protocol | crypto | keyserver | dead
    description: str  # what the faulty SUT does, and what a checker sees on the wire
    # The SUT's interfaces this fault kills (some of INTERFACES): a dead or crashed SUT, not a misbehaving one.
    # Such a SUT logs the moment it died (`log_death`); the selftest then requires the decision fail and no
    # negative case on a dead interface passing after that moment. Empty: the SUT stays alive.
    dead: tuple[str, ...] = ()
    # selftest kind (hse, emks, emse) -> the cases that must give their failing verdict with this fault on (the
    # cheapest reliable catchers); the selftest and the suite tests read them here
    caught_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # the should/may requirement the fault breaks, and why: a warning is then the right verdict, so a should/may
    # case that warns catches it. Empty: the fault breaks a shall requirement and needs a fail.
    warn_suffices: str = ""
    # The interfaces `best-conformance fuzz` finds this fault on (some of FUZZ_INTERFACES), or LOAD: `best-conformance
    # load` finds it (it shows only with concurrent sessions). A fault no case is meant to catch, only fuzzing or
    # load. The selftest does not run it (selftest.kind_faults); caught_by may be empty.
    found_by: tuple[str, ...] = ()

    @property
    def finder(self) -> str | None:
        """The command that finds a fault no case is meant to catch: `best-conformance load` or `... fuzz`."""
        if not self.found_by:
            return None
        return "best-conformance load" if LOAD in self.found_by else "best-conformance fuzz"


class CatalogueError(ValueError):
    """A wrong entry in faults.yaml: the message names the file, line and fault."""


_FIELDS = {"name", "component", "layer", "description", "dead", "caught_by", "warn_suffices", "found_by"}
_REQUIRED = ("name", "component", "layer", "description")  # and caught_by, unless found_by says fuzz or load finds it


def _names(value: Any) -> bool:
    """A non-empty list of non-empty strings."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _fault(entry: Any, where: str) -> Fault:
    """One catalogue entry as a Fault; CatalogueError naming `where` (file:line and fault) if a field is wrong."""
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: a fault is a mapping of {', '.join(sorted(_FIELDS))}, not {entry!r}")
    entry = {k: v for k, v in entry.items() if k != "__line__"}
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise CatalogueError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise CatalogueError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in ("name", "description"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise CatalogueError(f"{where}: {key} must be a non-empty string, not {entry[key]!r}")
    if not entry["name"].isidentifier():
        raise CatalogueError(f"{where}: name {entry['name']!r} must be a word of letters, digits and _")
    for key, allowed in (("component", COMPONENTS), ("layer", LAYERS)):
        if entry[key] not in allowed:
            raise CatalogueError(f"{where}: {key} {entry[key]!r} is not one of {', '.join(allowed)}")
    dead = entry.get("dead", [])
    if dead != [] and not (_names(dead) and set(dead) <= set(INTERFACES) and len(set(dead)) == len(dead)):
        raise CatalogueError(f"{where}: dead {dead!r} must list distinct interfaces of {', '.join(INTERFACES)}")
    if (entry["layer"] == "dead") != bool(dead):
        raise CatalogueError(f"{where}: a fault of layer dead, and only such a fault, lists the interfaces it kills")
    found_by = entry.get("found_by", [])
    if found_by != [] and not (
        _names(found_by) and set(found_by) <= set(FINDERS) and len(set(found_by)) == len(found_by)
    ):
        raise CatalogueError(
            f"{where}: found_by {found_by!r} must list distinct interfaces fuzzing finds it on: "
            f"{', '.join(FUZZ_INTERFACES)}; or {LOAD} (a load run finds it)"
        )
    if "caught_by" not in entry and not found_by:
        raise CatalogueError(
            f"{where}: missing field(s) caught_by (or found_by, for a fault only fuzzing or a load run finds)"
        )
    caught_by = entry.get("caught_by", {})
    if isinstance(caught_by, dict):
        caught_by = {k: v for k, v in caught_by.items() if k != "__line__"}
    if not (
        isinstance(caught_by, dict)
        and (caught_by or found_by)
        and all(isinstance(k, str) and _names(v) for k, v in caught_by.items())
    ):
        raise CatalogueError(
            f"{where}: caught_by must map each selftest kind to the cases that catch the fault "
            f"(e.g. {{hse: [HSE-SR-001]}}), not {caught_by!r}"
        )
    warn = entry.get("warn_suffices", "")
    if not isinstance(warn, str) or ("warn_suffices" in entry and not warn.strip()):
        raise CatalogueError(
            f"{where}: warn_suffices must name the should/may requirement the fault breaks, and why; not {warn!r}"
        )
    return Fault(
        name=entry["name"],
        component=entry["component"],
        layer=entry["layer"],
        description=entry["description"],
        dead=tuple(dead),
        caught_by={kind: tuple(cases) for kind, cases in caught_by.items()},
        warn_suffices=warn,
        found_by=tuple(found_by),
    )


def load_catalogue(text: str, source: str = CATALOGUE_FILE) -> tuple[Fault, ...]:
    """The faults of a catalogue file's text, in file order; CatalogueError names the first wrong entry."""
    try:
        data = yaml.load(text, Loader=LineLoader)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{source}: not YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("faults"), list):
        raise CatalogueError(f"{source}: expected a mapping with a list `faults:`")
    faults: list[Fault] = []
    for n, entry in enumerate(data["faults"], 1):
        line = entry.get("__line__", "?") if isinstance(entry, dict) else "?"
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"{source}:{line}: fault {name or f'#{n}'}"
        fault = _fault(entry, where)
        if any(f.name == fault.name for f in faults):
            raise CatalogueError(f"{where}: the name {fault.name} is listed twice")
        faults.append(fault)
    return tuple(faults)


def _shipped() -> tuple[Fault, ...]:
    text = resources.files("conformance").joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return load_catalogue(text)


CATALOGUE: tuple[Fault, ...] = _shipped()

BY_NAME = {f.name: f for f in CATALOGUE}


class UnknownFault(ValueError):
    pass


def parse_faults(names: Iterable[str], component: str | None = None) -> frozenset[str]:
    """Validate fault names (for one component, if given); an unknown one is named with the known ones."""
    chosen = frozenset(n.strip() for n in names if n.strip())
    known = {f.name for f in CATALOGUE if component is None or f.component == component}
    unknown = sorted(chosen - known)
    if unknown:
        raise UnknownFault(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return chosen
