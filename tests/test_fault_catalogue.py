"""The fault catalogue is data (conformance/faults.yaml, package data): it loads once into CATALOGUE, and a wrong
entry is refused with a message naming the file, line and fault."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from conformance.faults import (
    BY_NAME,
    CATALOGUE,
    INTERFACES,
    CatalogueError,
    Fault,
    load_catalogue,
    parse_faults,
)

GOOD = """\
faults:
  - name: no_reply
    component: hse
    layer: protocol
    description: Session Requests are silently ignored
    caught_by: {hse: [HSE-SR-001]}
  - name: hse_hangs_after_setup
    component: hse
    layer: dead
    description: >-
      once the HSE has sent its first Session Start
      it hangs
    dead: [emsdp, key_server]
    caught_by: {hse: [HSE-EAS-002]}
    warn_suffices: "POL-X (should): why"
"""


def test_the_shipped_catalogue_is_package_data_and_loads():
    assert resources.files("conformance").joinpath("faults.yaml").is_file()
    entries = yaml.safe_load(resources.files("conformance").joinpath("faults.yaml").read_text(encoding="utf-8"))
    assert len(CATALOGUE) == len(entries["faults"]) and len(BY_NAME) == len(CATALOGUE)  # every entry loads, once
    assert {f.component for f in CATALOGUE} == {"hse", "keyserver", "emse", "ue"}
    assert all(isinstance(f, Fault) and (f.caught_by or f.found_by) for f in CATALOGUE)
    assert {i for f in CATALOGUE for i in f.dead} <= set(INTERFACES)
    assert [f.name for f in CATALOGUE if f.layer == "dead"] == [f.name for f in CATALOGUE if f.dead]
    assert BY_NAME["hse_hangs_after_setup"].description.startswith("once the HSE has sent its first Session Start")
    assert "\n" not in BY_NAME["hse_hangs_after_setup"].description
    assert BY_NAME["tlv_order_swapped"].warn_suffices.startswith("POL-TLV-001 (should)")
    assert BY_NAME["wrong_kdf_key"].warn_suffices == ""
    assert BY_NAME["client_cert_not_required"].caught_by == {"hse": ("HSE-TLS-001",), "emks": ("EMKS-TLS-001",)}


def test_a_fault_is_hashable_and_immutable():
    fault = BY_NAME["no_reply"]
    assert hash(fault) == hash(BY_NAME["no_reply"]) and fault in set(CATALOGUE)
    with pytest.raises(AttributeError):
        fault.name = "other"  # type: ignore[misc]


def test_a_good_catalogue_loads_in_file_order():
    no_reply, hang = load_catalogue(GOOD)
    assert no_reply == Fault("no_reply", "hse", "protocol", "Session Requests are silently ignored",
                             caught_by={"hse": ("HSE-SR-001",)})  # fmt: skip
    assert hang.dead == ("emsdp", "key_server") and hang.description == (
        "once the HSE has sent its first Session Start it hangs"
    )
    assert hang.caught_by == {"hse": ("HSE-EAS-002",)} and hang.warn_suffices == "POL-X (should): why"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("layer: protocol", "layer: transport"), "faults.yaml:2: fault no_reply: layer 'transport' is not one of"),
        (("component: hse\n    layer: protocol", "component: eas\n    layer: protocol"), "fault no_reply: component"),
        (("    caught_by: {hse: [HSE-SR-001]}\n", ""), "faults.yaml:2: fault no_reply: missing field(s) caught_by"),
        (("caught_by: {hse: [HSE-SR-001]}", "caught_by: [HSE-SR-001]"), "fault no_reply: caught_by must map"),
        (("caught_by: {hse: [HSE-SR-001]}", "caught_by: {hse: []}"), "fault no_reply: caught_by must map"),
        (("caught_by: {hse: [HSE-SR-001]}", "catched_by: {hse: [HSE-SR-001]}"), "unknown field(s) catched_by"),
        (("dead: [emsdp, key_server]", "dead: [udp]"), "fault hse_hangs_after_setup: dead ['udp'] must list"),
        (("dead: [emsdp, key_server]\n", "\n"), "fault hse_hangs_after_setup: a fault of layer dead"),
        (('warn_suffices: "POL-X (should): why"', "warn_suffices: true"), "warn_suffices must name the should/may"),
        (("name: hse_hangs_after_setup", "name: no_reply"), "faults.yaml:7: fault no_reply: the name no_reply is"),
        (("name: no_reply", "name: no reply"), "fault no reply: name 'no reply' must be a word"),
        (("description: Session Requests are silently ignored", "description: 3"), "description must be a non-empty"),
    ],
)
def test_a_wrong_entry_is_refused_naming_it(change, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(CatalogueError) as refused:
        load_catalogue(text)
    assert message in str(refused.value)


def test_a_fault_without_a_catcher_is_refused():
    with pytest.raises(CatalogueError, match="fault no_reply: caught_by must map"):
        load_catalogue(GOOD.replace("caught_by: {hse: [HSE-SR-001]}", "caught_by: {}"))


@pytest.mark.parametrize("text", ["faults: {}", "- name: x", "faults: [", "faults:\n  - just a name"])
def test_a_catalogue_that_is_not_a_list_of_faults_is_refused(text):
    with pytest.raises(CatalogueError, match=r"^faults\.yaml"):
        load_catalogue(text)


def test_parse_faults_still_checks_names_against_the_catalogue():
    assert parse_faults(["no_reply", " "]) == {"no_reply"}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults(["no_reply"], "keyserver")
