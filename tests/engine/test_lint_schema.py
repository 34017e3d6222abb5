"""Every step's value and options and every matcher's argument are checked by the linter against the schema its
verb or matcher declares (engine.schema, issue 11 item 8): each problem names its file and line, an unknown name
comes with a did-you-mean suggestion, and the shipped suites lint clean."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from conformance.binding.loader import load_binding
from conformance.engine.lint import load_suite
from conformance.engine.matchers import MATCHER_SCHEMAS, MATCHERS
from conformance.engine.model import suite_dir
from conformance.engine.verbs import VERB_SCHEMAS, VERBS

HEAD = """- id: HSE-X-001
  title: t
  refs: ["TS 33.163 4.3.2"]
  requirements: [BEST-SR-006]
  level: shall
  applies: {sut: hse}
  steps:
    - start_session: {}
"""


def lint(tmp_path, steps: str, binding=None) -> tuple[str, list[str]]:
    """Lint one case (the HEAD above, then `steps`, each starting on line 9); the file and its problems."""
    path = tmp_path / "case.yaml"
    path.write_text(HEAD + steps, encoding="utf-8")
    _, report = load_suite([path], binding=binding)
    return str(path), report.errors


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        (  # a typo in an option
            "    - send: user_data\n      with: {dat: hello}\n",
            "send: unknown option 'dat'; did you mean 'data'? known: ",
        ),
        (  # a typo in a matcher's name
            "    - send: unknown_command\n    - expect: message_reject\n      check: {cuase: unknown_command}\n",
            "expect: unknown matcher 'cuase'; did you mean 'cause'? known: ",
        ),
        (  # a typo in a matcher's argument: a name of the binding
            "    - send: unknown_command\n    - expect: message_reject\n      check: {cause: unknown_comand}\n",
            "expect: matcher cause: unknown cause 'unknown_comand'; did you mean 'unknown_command'? known: ",
        ),
        (  # a value of the wrong type
            "    - send: user_data\n      with: {counter: [1]}\n",
            "send: option counter: must be replay or a counter value, got [1]",
        ),
        (  # a value of the wrong type, in a matcher's argument
            "    - send: unknown_command\n    - expect: message_reject\n      check: {rejected_command: 7}\n",
            "expect: matcher rejected_command: must be a string, got 7",
        ),
        (  # an unknown send value
            "    - send: sesion_terminate_request\n",
            "send: unknown message 'sesion_terminate_request'; did you mean 'session_terminate_request'? known: ",
        ),
        (  # from_port takes only `same`: anything else used to check nothing
            "    - send: user_data\n    - expect: user_data\n      check: {from_port: other}\n",
            "expect: matcher from_port: must be 'same', got 'other'",
        ),
        (  # protected takes only `true`: `false` used to be ignored
            "    - send: user_data\n    - expect: user_data\n      check: {protected: false}\n",
            "expect: matcher protected: must be true, got false",
        ),
        (  # an option a value of the verb does not take (it was silently ignored)
            "    - send: user_data\n      with: {res: wrong}\n",
            "send: option res: taken only with session_start_confirmation",
        ),
        (  # an option a value of the verb needs
            "    - send: raw\n",
            "send: raw needs option hex",
        ),
        (  # a step key the verb does not take
            "    - send: user_data\n      within: 2s\n",
            "send: takes no 'within' (it takes with, as)",
        ),
        (
            "    - send: user_data\n    - expect: user_data\n      within: soon\n",
            "expect: within: must be a duration such as 300ms, 2s or 2 (seconds), got 'soon'",
        ),
        (  # a key-server status: a name of the binding's rest.status
            "    - key_client: register\n      with: {status: forbiden}\n",
            "key_client: option status: unknown status 'forbiden'; did you mean 'forbidden'? known: ",
        ),
        (  # an exchange check takes only `true`
            "    - emks: registration\n      check: {created: false}\n",
            "emks: matcher created: must be true, got false",
        ),
        (
            "    - key_client: fetch_key\n      with: {key: {provisioned: -1, expct: unknown}}\n",
            "key_client: option key: unknown field 'expct'; did you mean 'expect'? known: provisioned, expect, key_id",
        ),
        (
            "    - probe: sesion\n",
            "probe: unknown probe 'sesion'; did you mean 'session'? known: session",
        ),
    ],
)
def test_each_problem_is_named_with_file_line_and_a_suggestion(tmp_path, steps, problem):
    path, errors = lint(tmp_path, steps)
    wanted = f"{path}:{_line_of_last_step(steps)}: case HSE-X-001: {problem}"
    assert any(e.startswith(wanted) for e in errors), (wanted, errors)


def _line_of_last_step(steps: str) -> int:
    """The file line of the last step in `steps` (the one each example puts its problem in)."""
    lines = steps.splitlines()
    return 9 + max(i for i, text in enumerate(lines) if text.startswith("    - "))


def test_a_typo_in_a_step_key_is_named_with_a_suggestion(tmp_path):
    path, errors = lint(tmp_path, "    - send: user_data\n      withh: {data: hello}\n")
    assert f"{path}:9: a step needs exactly one verb, got ['send', 'withh']; did you mean 'with' for 'withh'?" in errors


def test_a_clean_case_has_no_problem(tmp_path):
    _, errors = lint(
        tmp_path,
        "    - send: user_data\n      with: {data: hello, counter: 3}\n    - expect: user_data\n      within: 300ms\n"
        "      check: {data: hello, protected: true, from_port: same, header: {session_id: {not: 0}}}\n",
    )
    assert errors == []


def test_names_from_the_binding_follow_the_binding_the_case_is_linted_against(tmp_path):
    steps = "    - send: session_request\n    - expect: session_start\n      check: {hse_config: {flags: 1}}\n"
    assert lint(tmp_path, steps)[1] == []
    fields = [f for f in load_binding()["emsdp.hse_config.fields"] if f != "flags"]
    without_flags = load_binding({"emsdp": {"hse_config": {"fields": fields}}})
    _, errors = lint(tmp_path, steps, binding=without_flags)
    assert any("matcher hse_config: unknown HSE configuration field 'flags'" in e for e in errors), errors


def test_every_verb_and_matcher_declares_a_valid_schema():
    assert set(VERB_SCHEMAS) == set(VERBS)
    assert set(MATCHER_SCHEMAS) == set(MATCHERS)
    for schema in [*VERB_SCHEMAS.values(), *MATCHER_SCHEMAS.values()]:
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", ["hse", "emks", "emse"])
def test_every_shipped_suite_lints_clean(kind):
    cases, report = load_suite(suite_dir(kind).glob("*.yaml"))
    assert cases and report.errors == []


@pytest.mark.parametrize("action", ["plain_http", "http_upgrade"])
def test_plain_http_actions_take_no_certificate_or_status_and_need_a_proof_of_life(tmp_path, action):
    """HTTP in the clear to the key server's TLS port (TLS-210-005) is a refusal: an absence on the key server,
    which a later step must show still serving; it presents no certificate and has no HTTP status to expect."""
    path, errors = lint(tmp_path, f"    - key_client: {action}\n      with: {{certificate: none, status: refused}}\n")
    assert any(f"{path}:9: case HSE-X-001: key_client: option certificate: not taken with" in e for e in errors)
    assert any(f"{path}:9: case HSE-X-001: key_client: option status: not taken with" in e for e in errors)
    assert any("expects absence on the SUT's key server" in e for e in errors), errors
    _, errors = lint(tmp_path, f"    - key_client: {action}\n    - key_client: register\n")
    assert errors == []
