"""`best-conformance keys` and `best-conformance binding`, as a plugfest engineer uses them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from tests.kat import load_fixture

SET1 = load_fixture("milenage_ts35208.yaml")["vectors"][0]
KASME = load_fixture("kdf_ts33220.yaml")["kasme"]
KHSE = load_fixture("khse_selfcomputed.yaml")
SET1_ARGS = ["--k", SET1["k"], "--op", SET1["op"], "--rand", SET1["rand"], "--sqn", SET1["sqn"], "--amf", SET1["amf"]]


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_console_script_prints_test_set_1_as_json():
    """The issue's acceptance check, through the installed console script."""
    beside = Path(sys.executable).with_name("best-conformance")  # the venv running the tests, activated or not
    exe = str(beside) if beside.exists() else shutil.which("best-conformance")
    assert exe, "the package must be installed (pip install -e .)"
    done = subprocess.run(
        [exe, "keys", "--json", *SET1_ARGS, "--snn", KHSE["inputs"]["snn"]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    expected = {
        "res": SET1["f2"],
        "ck": SET1["f3"],
        "ik": SET1["f4"],
        "ak": SET1["f5"],
        "mac_a": SET1["f1"],
        "autn": KHSE["inputs"]["autn"],
        "khse": KHSE["khse_0x63"],
        "opc": SET1["opc"],
        "mac_s": SET1["f1star"],
        "ak_star": SET1["f5star"],
    }
    assert {k: doc[k] for k in expected} == expected
    assert all(v == v.lower() for k, v in doc.items() if isinstance(v, str) and k != "key_agreement")


def test_kasme_with_a_plmn_id(capsys):
    """TS 33.401 A.2 known answer: set-1 K/OP/RAND (so CK, IK, AK of set 1) with SQN fd8eef40df7d."""
    args = ["--k", SET1["k"], "--opc", SET1["opc"], "--rand", SET1["rand"], "--sqn", KASME["sqn"], "--amf", "b9b9"]
    code, out, _ = run(capsys, "keys", "--json", *args, "--sn-id", KASME["sn_id"])
    assert code == 0
    doc = json.loads(out)
    assert doc["kasme"] == KASME["kasme"] and doc["key_agreement"] == "eps"
    assert doc["sqn_xor_ak"] == KASME["sqn_xor_ak"]


def test_every_key_is_listed_with_its_inputs_and_basis(capsys):
    code, out, _ = run(
        capsys,
        "keys",
        "--json",
        *SET1_ARGS,
        "--snn",
        KHSE["inputs"]["snn"],
        "--eas-id",
        "eas-1",
        "--emse-id",
        "emse-1",
        "--third-party-key",
        "00112233",
        "--naf-key",
        "ab" * 32,
    )
    assert code == 0
    doc = json.loads(out)
    names = [k["name"] for k in doc["hierarchy"]]
    assert names == [
        "ck_ik_prime",
        "khse",
        "khse_eap_aka_prime",
        "kint",
        "kint_enc",
        "kint_int",
        "ke2m_enc",
        "ke2m_int",
        "kint_e2e",
        "kint_eas_psk",
        "e2m_int_key",
        "e2m_key",
        "e2e_key",
    ]
    by_name = {k["name"]: k for k in doc["hierarchy"]}
    assert by_name["khse"]["fc"] == "0x63" and not by_name["khse"]["binding_dependent"]
    assert by_name["khse"]["inputs"] == [
        {"name": "snn", "value": KHSE["inputs"]["snn"].encode().hex()},
        {"name": "sqn_xor_ak", "value": KHSE["inputs"]["sqn_xor_ak"]},
    ]
    assert by_name["kint"]["key"] == "khse" and by_name["kint"]["binding_dependent"]
    assert by_name["e2m_key"]["inputs"] == [{"name": "emse_id", "value": b"emse-1".hex()}]
    assert doc["key_id"] == SET1["rand"][-8:]
    assert doc["not_derived"] == {"kasme": "needs sn_id"}
    for entry in doc["hierarchy"]:
        assert doc[entry["name"]] == entry["value"]


def test_table_output_marks_assumed_keys(capsys):
    code, out, _ = run(capsys, "keys", *SET1_ARGS, "--snn", KHSE["inputs"]["snn"])
    assert code == 0
    assert SET1["f2"] in out and "KInt*" in out and "KHSE (5G AKA) " in out
    assert '"5G:mnc001' in out  # text inputs are shown as text
    assert "not derived: kasme: needs sn_id" in out


def test_binding_override_file_changes_the_keys(capsys, tmp_path):
    override = tmp_path / "agreement.yaml"
    override.write_text("keys:\n  derivations:\n    kint:\n      fc: 0xe0\n")
    _, before, _ = run(capsys, "keys", "--json", *SET1_ARGS)
    _, after, _ = run(capsys, "keys", "--json", *SET1_ARGS, "--binding", str(override))
    before, after = json.loads(before), json.loads(after)
    assert before["ck"] == after["ck"] and before["kint"] != after["kint"]
    assert [k["fc"] for k in after["hierarchy"] if k["name"] == "kint"] == ["0xe0"]


def test_binding_dependence_is_transitive(capsys, tmp_path):
    """Overriding CK'‖IK' makes KHSE (EAP-AKA'), derived from it, binding-dependent too; KHSE (5G AKA) is not."""
    override = tmp_path / "o.yaml"
    override.write_text("keys.derivations.ck_ik_prime.fc: 0x20\n")  # same value, but now an override
    code, out, _ = run(capsys, "keys", "--json", *SET1_ARGS, "--snn", "WLAN", "--binding", str(override))
    assert code == 0
    marks = {k["name"]: k["binding_dependent"] for k in json.loads(out)["hierarchy"]}
    assert marks["ck_ik_prime"] and marks["khse_eap_aka_prime"] and not marks["khse"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--k", SET1["k"][:-1]], "Invalid value for '--k': odd number of hex digits (31)"),
        (["--k", SET1["k"][:-2]], "Invalid value for '--k': must be 16 octets (32 hex digits), got 15"),
        (["--rand", "zz" * 16], "Invalid value for '--rand': not hex"),
        (["--k", "zz" + SET1["k"][2:]], "Invalid value for '--k': not hex (a character other than 0-9, a-f) in 32"),
        (["--sqn", "00"], "Invalid value for '--sqn': must be 6 octets"),
        (["--amf", "b9b9b9"], "Invalid value for '--amf': must be 2 octets"),
        (["--opc", SET1["opc"]], "give exactly one of --op and --opc"),
        (["--key-agreement", "lte"], "Invalid value for '--key-agreement': must be one of umts, eps, 5g_aka"),
        (["--sn-id", "0248"], "Invalid value for '--sn-id': must be 3 octets"),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(capsys, change, message):
    args = dict(zip(SET1_ARGS[::2], SET1_ARGS[1::2], strict=True))
    for flag, value in zip(change[::2], change[1::2], strict=True):
        args[flag] = value
    code, out, err = run(capsys, "keys", *[x for pair in args.items() for x in pair])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("best-conformance: error: "), err
    assert message in err
    assert all(value not in err for value in change[1::2] if len(value) > 8), "a value typed is never echoed"


def test_missing_required_argument(capsys):
    code, _, err = run(capsys, "keys", "--k", SET1["k"], "--op", SET1["op"])
    assert code == 2 and "Missing option '--rand'" in err and err.count("\n") == 1


def test_bad_binding_file_is_named(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("transport:\n  udp_prot: 4000\n")
    code, _, err = run(capsys, "keys", *SET1_ARGS, "--binding", str(bad))
    assert code == 2
    assert f"{bad}: transport.udp_prot: unknown parameter; did you mean transport.udp_port?" in err


def test_binding_command_lists_every_parameter_with_its_source(capsys):
    code, out, _ = run(capsys, "binding", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["emsdp.tlv.tags.imsi"] == {"value": 1, "source": "TS 33.163 6.2.6.1.1 [C]", "basis": "spec"}
    code, out, _ = run(capsys, "binding", "--json", "--not-confirmed")
    assert "emsdp.tlv.tags.imsi" not in json.loads(out) and "transport.udp_port" in json.loads(out)
    code, out, _ = run(capsys, "binding")
    assert code == 0 and "transport.udp_port" in out


def test_binding_command_lists_the_alternatives_the_probe_searches(capsys):
    code, out, _ = run(capsys, "binding", "--json", "--alternatives")
    doc = json.loads(out)
    assert code == 0 and "transport.udp_port" not in doc
    assert [a["value"] for a in doc["protection.count.align"]["alternatives"]] == ["msb"]
    assert all(a["source"] for entry in doc.values() for a in entry["alternatives"])
    code, out, _ = run(capsys, "binding", "--json")
    assert "alternatives" in json.loads(out)["protection.mac.take"]
    assert "alternatives" not in json.loads(out)["transport.udp_port"]
    code, out, _ = run(capsys, "binding", "--alternatives")
    assert code == 0 and "protection.mac.take" in out and "alternative" in out


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and "best-conformance" in out
    code, out, _ = run(capsys, "keys", "--help")
    assert code == 0 and "--third-party-key" in out
