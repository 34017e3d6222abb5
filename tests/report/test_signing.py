"""keygen, sign and verify on a real run folder: valid as signed, and every alteration is named exactly."""

from __future__ import annotations

import json
import stat

import pytest

from conformance.cli import main
from conformance.report.signing import SIGNATURE, default_key_path


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    """The default lab key goes under a temporary user config directory, never the real one."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def key(tmp_path, capsys):
    path = tmp_path / "keys" / "lab.pem"
    assert cli(capsys, "keygen", "--out", path)[0] == 0
    return path


@pytest.fixture
def signed(run_copy, key, capsys):
    """A copy of the faulty EMKS run (verdicts of every kind) signed with `key`."""
    run_dir = run_copy("key_id_ignored")
    code, _out, err = cli(capsys, "sign", run_dir, "--key", key)
    assert code == 0 and (run_dir / SIGNATURE).is_file(), err
    return run_dir


def verify(capsys, run_dir, *extra):
    code, out, err = cli(capsys, "verify", run_dir, *extra)
    return code, [line for line in out.splitlines() if line.startswith("ALTERED")], out + err


def test_keygen_writes_a_private_key_0600_and_its_public_key_and_will_not_overwrite(tmp_path, capsys):
    out = tmp_path / "k.pem"
    code, text, _ = cli(capsys, "keygen", "--out", out)
    assert code == 0 and "fingerprint: SHA256:" in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in out.read_bytes() and b"PUBLIC KEY" in (tmp_path / "k.pem.pub").read_bytes()
    code, _, err = cli(capsys, "keygen", "--out", out)
    assert code == 2 and "exists" in err and "--force" in err
    assert cli(capsys, "keygen", "--out", out, "--force")[0] == 0


def test_sign_and_verify_a_real_run(signed, key, capsys):
    code, altered, text = verify(capsys, signed, "--public-key", f"{key}.pub")
    assert code == 0 and altered == [] and "valid: signed by SHA256:" in text
    document = json.loads((signed / SIGNATURE).read_text())
    files = document["manifest"]["files"]
    assert {"junit.xml", "results.jsonl", "report.html"} <= set(files) and "compliance.json" not in files
    assert any(name.startswith("pcaps/") for name in files)
    cases = json.loads((signed / "compliance.json").read_text())["cases"]
    assert set(document["manifest"]["compliance.json"]["cases"]) == {c["id"] for c in cases}


def test_sign_without_a_key_makes_the_default_lab_key_and_says_where(run_copy, capsys, config_home):
    run_dir = run_copy("emks")
    code, _out, err = cli(capsys, "sign", run_dir)
    assert code == 0 and f"created the lab signing key {default_key_path()}" in err
    assert default_key_path().is_relative_to(config_home)
    assert stat.S_IMODE(default_key_path().stat().st_mode) == 0o600
    code, _, err = cli(capsys, "sign", run_dir)  # second time: reused, not made again
    assert code == 0 and "created" not in err
    code, altered, _ = verify(capsys, run_dir, "--public-key", f"{default_key_path()}.pub")
    assert code == 0 and altered == []


def test_a_reformatted_compliance_json_is_still_valid(signed, capsys):
    """The signature covers the canonical JSON, not its layout."""
    path = signed / "compliance.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True))
    assert verify(capsys, signed)[0] == 0


def test_one_edited_verdict_is_named_by_its_case(signed, capsys):
    path = signed / "compliance.json"
    doc = json.loads(path.read_text())
    case = next(c for c in doc["cases"] if c["id"] == "EMKS-KEY-007")
    case["verdict"] = "pass"
    path.write_text(json.dumps(doc, indent=2))
    code, altered, _ = verify(capsys, signed)
    assert code == 1 and altered == ["ALTERED compliance.json: case EMKS-KEY-007: changed"]


def test_an_edited_top_level_field_is_named(signed, capsys):
    path = signed / "compliance.json"
    doc = json.loads(path.read_text())
    doc["decision"]["outcome"] = "pass"
    path.write_text(json.dumps(doc))
    code, altered, _ = verify(capsys, signed)
    assert code == 1 and altered == ["ALTERED compliance.json: field decision: changed"]


def test_one_changed_pcap_byte_is_named_by_its_file(signed, capsys):
    pcap = signed / "pcaps" / "EMKS-KEY-002.pcap"
    data = bytearray(pcap.read_bytes())
    data[-1] ^= 0x01
    pcap.write_bytes(bytes(data))
    code, altered, _ = verify(capsys, signed)
    assert code == 1 and len(altered) == 1
    assert altered[0].startswith("ALTERED file pcaps/EMKS-KEY-002.pcap: changed (signed sha256 ")


def test_a_deleted_and_an_added_file_are_named(signed, capsys):
    (signed / "junit.xml").unlink()
    (signed / "traces").mkdir(exist_ok=True)
    (signed / "traces" / "EXTRA.json").write_text("[]")
    code, altered, _ = verify(capsys, signed)
    assert code == 1
    assert altered == [
        "ALTERED file junit.xml: missing (signed, now gone)",
        "ALTERED file traces/EXTRA.json: added (not signed)",
    ]


def test_a_signature_by_another_key_fails(signed, tmp_path, capsys):
    other = tmp_path / "other.pem"
    assert cli(capsys, "keygen", "--out", other)[0] == 0
    code, altered, _ = verify(capsys, signed, "--public-key", f"{other}.pub")
    assert code == 1 and len(altered) == 1 and "signed by another key" in altered[0]


def test_a_re_signed_manifest_under_the_same_key_name_fails(signed, tmp_path, capsys):
    """Someone alters a pcap and fixes its digest in signature.json: the signature no longer verifies."""
    pcap = signed / "pcaps" / "EMKS-KEY-002.pcap"
    pcap.write_bytes(pcap.read_bytes() + b"\x00")
    document = json.loads((signed / SIGNATURE).read_text())
    from conformance.report.compliance import file_sha256

    document["manifest"]["files"]["pcaps/EMKS-KEY-002.pcap"] = file_sha256(pcap)
    (signed / SIGNATURE).write_text(json.dumps(document))
    code, altered, _ = verify(capsys, signed)
    assert code == 1 and altered == [
        "ALTERED signature.json: the signature does not verify: the manifest or its fields were altered"
    ]


def test_a_compliance_json_off_its_schema_fails_verify_and_cannot_be_signed(signed, key, capsys):
    path = signed / "compliance.json"
    doc = json.loads(path.read_text())
    doc["format_version"] = 2
    path.write_text(json.dumps(doc))
    code, altered, _ = verify(capsys, signed)
    assert code == 1 and altered == [
        "ALTERED compliance.json: field format_version: changed",
        "ALTERED compliance.json: does not match compliance.schema.json at format_version: 1 was expected",
    ]
    code, _, err = cli(capsys, "sign", signed, "--key", key)
    assert code == 2 and "cannot sign" in err and "format_version" in err


def test_bad_input_is_exit_2_with_one_line(run_copy, signed, key, tmp_path, capsys):
    unsigned = run_copy("emks")
    cases = [
        (("verify", tmp_path / "nowhere"), "not a folder"),
        (("verify", unsigned), "signature.json: missing; sign the run folder first"),
        (("verify", tmp_path), "not a run folder (no compliance.json, no signature.json)"),
        (("verify", signed, "--public-key", key), "a private key; give its public key"),
        (("sign", signed, "--key", f"{key}.pub"), "not an unencrypted PEM private key"),
        (("sign", tmp_path, "--key", key), "compliance.json: missing"),
    ]
    for argv, message in cases:
        code, _out, err = cli(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert "Traceback" not in err
