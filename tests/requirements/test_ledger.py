"""The requirement ledger: the shipped files load, the ids other parts rely on exist, and every rule of the
loader fires on a file that breaks it, naming the file, the line and the id."""

from __future__ import annotations

import pytest

from conformance.binding import load_binding
from conformance.requirements import REASONS, LedgerError, ledger_dir, load_ledger, shipped_ledger

GOOD = """
source:
  title: a test source
requirements:
  - id: T-GOOD-001
    clause: TS 33.163 6.2.2
    level: shall
    sut: [hse]
    text: A requirement in other words.
"""

# The ids the EMSE suite (suites/emse) cites, with the level and SUT kind they must have.
CONTRACT = {
    "SOL10-EMSE-001": ("shall", "emse"),
    "SOL10-EMSE-002": ("shall", "emse"),
    "SOL10-EMSE-003": ("shall", "emse"),
    "SOL10-EMSE-004": ("shall", "emse"),
    "SOL10-EMSE-005": ("may", "emse"),
    "SOL10-EMSE-006": ("shall", "emse"),
    "SOL10-EMSE-007": ("may", "emse"),
    "TLS-210-001": ("shall", "emse"),
    "TLS-210-002": ("shall", "emse"),
    "TLS-210-003": ("shall", "emse"),
}


def ledger_file(tmp_path, text, name="test.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(*paths):
    with pytest.raises(LedgerError) as info:
        load_ledger(paths)
    return info.value.problems


def test_the_shipped_ledger_loads_one_file_per_source():
    ledger = shipped_ledger()
    assert len(ledger) > 100
    assert {"ts33163", "seed002", "seed003", "tr33863", "ts33210", "crypto", "policy"} <= set(ledger.sources)
    assert {r.source for r in ledger.values()} == set(ledger.sources)
    assert all(r.text and r.clause for r in ledger.values())


@pytest.mark.parametrize("rid", sorted(CONTRACT))
def test_the_ids_the_emse_suite_cites_exist_with_their_level(rid):
    level, sut = CONTRACT[rid]
    requirement = shipped_ledger()[rid]
    assert requirement.level == level and sut in requirement.sut


def test_policy_clauses_name_binding_parameters():
    """A policy requirement's clause is the binding key that sets the reaction: it must exist."""
    binding = load_binding()
    for requirement in shipped_ledger().values():
        if requirement.clause.startswith("binding "):
            key = requirement.clause.removeprefix("binding ")
            assert key in binding or binding.section(key), requirement.id


def test_the_harness_policy_is_never_a_shall():
    policy = [r for r in shipped_ledger().values() if r.source == "policy"]
    assert policy and all(r.level != "shall" and r.clause.startswith("binding ") for r in policy)


def test_a_good_file_loads(tmp_path):
    ledger = load_ledger([ledger_file(tmp_path, GOOD)])
    assert list(ledger) == ["T-GOOD-001"]
    assert ledger["T-GOOD-001"].location.endswith("test.yaml:5")
    assert ledger.suggest("T-GOOD-01") == "; did you mean T-GOOD-001?"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("level: shall", "level: must"), "T-GOOD-001: level must be one of shall, should, may, got 'must'"),
        (("    text: A requirement in other words.\n", ""), "T-GOOD-001: missing 'text'"),
        (("    clause: TS 33.163 6.2.2\n", ""), "T-GOOD-001: missing 'clause'"),
        (("sut: [hse]", "sut: []"), "T-GOOD-001: missing 'sut'"),
        (("level: shall", "level: shall\n    colour: red"), "T-GOOD-001: unknown field 'colour'"),
        (("id: T-GOOD-001", "id: t-good-1"), "t-good-1: id must be like BEST-HDR-001"),
        (("clause: TS 33.163 6.2.2", "clause: somewhere"), "T-GOOD-001: clause 'somewhere' is not like"),
        (("sut: [hse]", "sut: [hsse]"), "T-GOOD-001: sut 'hsse' is not one of"),
        (("sut: [hse]", "sut: [hss]"), "T-GOOD-001: concerns only hss, which the harness does not test"),
        (
            ("sut: [hse]", "sut: [hse]\n    untested: {reason: lazy, note: later}"),
            f"T-GOOD-001: untested reason must be one of {', '.join(REASONS)}, got 'lazy'",
        ),
        (("sut: [hse]", "sut: [hse]\n    untested: {reason: not_covered}"), "T-GOOD-001: untested needs a note"),
        (("sut: [hse]", "sut: [hse]\n    untested: not_covered"), "T-GOOD-001: untested must be {reason"),
    ],
)
def test_each_rule_names_file_line_and_id(tmp_path, change, message):
    old, new = change
    path = ledger_file(tmp_path, GOOD.replace(old, new))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:5: ") and message in problem, problem


def test_a_duplicate_id_in_another_file_names_both_places(tmp_path):
    first = ledger_file(tmp_path, GOOD, "a.yaml")
    second = ledger_file(tmp_path, GOOD, "b.yaml")
    assert problems_of(first, second) == [f"{second}:5: T-GOOD-001: duplicate id, also at {first}:5"]


def test_every_problem_of_every_file_at_once(tmp_path):
    second = GOOD.split("requirements:\n")[1].replace("T-GOOD", "T-MORE").replace("level: shall", "level: often")
    broken = ledger_file(tmp_path, GOOD.replace("level: shall", "level: must") + second)
    not_a_ledger = ledger_file(tmp_path, "- just a list\n", "list.yaml")
    not_yaml = ledger_file(tmp_path, "source: {title: x}\nrequirements: [\n", "bad.yaml")
    problems = problems_of(broken, not_a_ledger, not_yaml)
    assert len(problems) == 4, problems
    assert "T-GOOD-001: level must be one of" in problems[0] and "T-MORE-001: level must be one of" in problems[1]
    assert problems[2] == f"{not_a_ledger}:1: a ledger file is a mapping with 'source' (title, note) and 'requirements'"
    assert problems[3].startswith(f"{not_yaml}:3: not valid YAML")


def test_the_ledger_files_are_package_data():
    """The ledger travels with the installed harness (conformance/requirements/*.yaml beside the loader)."""
    assert sorted(p.stem for p in ledger_dir().glob("*.yaml")) == sorted(shipped_ledger().sources)
