"""The certificate part of the iwlz CLI, through main(argv)."""

import json
import os
import stat
from pathlib import Path

import pytest

from node.cli import main
from node.home import NodeHome


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert run(capsys, "network", "init", str(tmp_path / "net"))[0] == 0
    return tmp_path / "net"


def test_init_issue_show_round_trip(tmp_path: Path, network: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "zk"
    code, out, _ = run(capsys, "init", str(home), "--role", "zorgkantoor", "--name", "Zorgkantoor Noord", "--uzovi", "5151")
    assert code == 0 and out.strip().startswith("did:key:z6Mk")
    assert stat.S_IMODE(os.stat(home / "node.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "admin.token").st_mode) == 0o600
    code, out, _ = run(capsys, "--json", "cert", "issue", "--network", str(network), str(home))
    assert code == 0
    cert_id = json.loads(out)["cert_id"]
    code, out, _ = run(capsys, "--json", "cert", "show", str(home))
    shown = json.loads(out)
    assert shown["cert_id"] == cert_id
    assert shown["organisation"] == "Zorgkantoor Noord" and shown["identifiers"] == {"uzovi": "5151"}
    assert shown["revoked"] is False
    # The home now trusts the network root and its certificate verifies against it.
    node = NodeHome(home)
    member = node.trust_store().verify_certificate(node.certificate(), node.member().not_before + 600)
    assert member.did == shown["did"] == node.identity().did


def test_revoke_installs_a_newer_list(tmp_path: Path, network: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "za"
    run(capsys, "init", str(home), "--role", "zorgaanbieder", "--name", "De Linde", "--agb", "12345678", "--region", "5151")
    run(capsys, "cert", "issue", "--network", str(network), str(home))
    cert_id = NodeHome(home).member().cert_id_hex
    code, out, _ = run(capsys, "--json", "cert", "revoke", "--network", str(network), "--install", str(home), cert_id)
    assert code == 0 and json.loads(out)["version"] == 1
    code, out, _ = run(capsys, "--json", "cert", "revoke", "--network", str(network), "--install", str(home), "ab" * 16)
    assert json.loads(out)["version"] == 2
    shown = json.loads(run(capsys, "--json", "cert", "show", str(home))[1])
    assert shown["revoked"] is True
    trust = NodeHome(home).trust_store()
    assert trust.revocation_version(NodeHome(home).member().issuer) == 2


def test_client_certificate_never_shows_the_bsn(tmp_path: Path, network: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "client"
    run(capsys, "init", str(home), "--role", "client", "--bsn", "106658037", "--region", "5151")
    code, out, _ = run(capsys, "cert", "issue", "--network", str(network), str(home))
    assert code == 0 and "106658037" not in out and NodeHome(home).member().organisation == "client"
    code, out, _ = run(capsys, "--json", "cert", "show", str(home))
    assert "106658037" not in out and json.loads(out)["bound_to_bsn"] is True
    assert json.loads(out)["bsn_commitment"] == "blake2b-keyed"
    assert b"106658037" not in (home / "certificate.cwt").read_bytes()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["init", "{home}", "--role", "client", "--bsn", "123456789"], "11-proef"),
        (["init", "{home}", "--role", "client", "--name", "J. Jansen", "--bsn", "106658037"], "names no one"),
        (["init", "{home}", "--role", "zorgkantoor", "--uzovi", "5151"], "needs the organisation's name"),
        (["init", "{home}", "--role", "zorgkantoor", "--name", "Z", "--uzovi", "51"], "4 digits"),
        (["cert", "show", "{home}"], "is not a node home"),
        (["cert", "issue", "--network", "{tmp}/nowhere", "{home}"], "is not a network directory"),
        (["cert", "revoke", "--network", "{net}", "xyz"], "32 hex digits"),
    ],
)
def test_user_errors_are_one_line_and_non_zero(tmp_path: Path, network: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], message: str) -> None:
    filled = [a.format(home=tmp_path / "h", tmp=tmp_path, net=network) for a in argv]
    code, out, err = run(capsys, *filled)
    assert code == 2
    assert err.startswith("iwlz: error:") and message in err
    assert "Traceback" not in err and "123456789" not in err and "Jansen" not in err


def test_zorgkantoor_without_uzovi_cannot_get_a_certificate(tmp_path: Path, network: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "zk"
    run(capsys, "init", str(home), "--role", "zorgkantoor", "--name", "Z", "--kvk", "12345678")
    code, _, err = run(capsys, "cert", "issue", "--network", str(network), str(home))
    assert code == 2 and "needs identifier(s) uzovi" in err


def test_existing_home_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "ciz"
    run(capsys, "init", str(home), "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    key = (home / "node.key").read_bytes()
    code, _, err = run(capsys, "init", str(home), "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    assert code == 2 and "already holds a node" in err
    assert (home / "node.key").read_bytes() == key


def test_valid_for_takes_seconds_to_years_and_refuses_nothing_or_too_much(tmp_path: Path, network: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "za"
    assert run(capsys, "init", str(home), "--role", "zorgaanbieder", "--name", "De Linde", "--agb", "12345678")[0] == 0
    code, out, _ = run(capsys, "--json", "cert", "issue", "--network", str(network), "--valid-for", "30s", str(home))
    assert code == 0
    first = json.loads(out)
    assert 20 <= first["expires"] - NodeHome(home).member().not_before - 300 <= 40
    for bad in ("0s", "11y", "5w", "d", "3"):
        code, _, err = run(capsys, "cert", "issue", "--network", str(network), "--valid-for", bad, str(home))
        assert code == 2 and "error" in err, bad
    code, _, err = run(capsys, "cert", "issue", "--network", str(network), "--days", "0", str(home))
    assert code == 2 and "--days" in err  # used to make an already expired certificate, silently
    code, out, _ = run(capsys, "--json", "cert", "issue", "--network", str(network), "--valid-for", "5y", str(home))
    renewed = NodeHome(home).member()
    assert code == 0 and renewed.supersedes == bytes.fromhex(first["cert_id"])  # a renewal supersedes


def test_key_rotate_then_issue_makes_a_certificate_for_the_new_key(tmp_path: Path, network: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "zk"
    assert run(capsys, "init", str(home), "--role", "zorgkantoor", "--name", "Noord", "--uzovi", "5151")[0] == 0
    assert run(capsys, "cert", "issue", "--network", str(network), str(home))[0] == 0
    old = NodeHome(home).member()
    code, out, _ = run(capsys, "--json", "key", "rotate", str(home))
    next_did = json.loads(out)["next_did"]
    assert code == 0 and next_did != old.did
    assert stat.S_IMODE(os.stat(home / "node.next.key").st_mode) == 0o600
    code, out, _ = run(capsys, "--json", "cert", "issue", "--network", str(network), str(home))
    assert code == 0 and json.loads(out)["did"] == next_did and json.loads(out)["running_node_switched"] is False
    assert NodeHome(home).member().did == old.did  # the node has not switched yet: it does at (re)start
    assert NodeHome(home).finish_switch()
    assert NodeHome(home).identity().did == next_did and NodeHome(home).member().supersedes == old.cert_id
