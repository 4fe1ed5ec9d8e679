"""The swarm stack for testers, read as a reviewer would (always), and run end to end (when asked).

The end-to-end run (docker/e2e.sh) builds images, starts a swarm and scales to 100 containers: it runs only
with IWLZ_E2E_SWARM=1 and a Docker engine, and skips saying why otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "docker" / "compose.yml"


def stack() -> dict[str, Any]:
    return dict(yaml.safe_load(STACK.read_text()))


def volumes_of(service: dict[str, Any]) -> list[str]:
    return [v.split(":")[0] if isinstance(v, str) else v["source"] for v in service.get("volumes", [])]


def test_no_volume_is_shared_between_services() -> None:
    seen: dict[str, str] = {}
    for name, service in stack()["services"].items():
        for volume in volumes_of(service):
            assert volume not in seen, f"{volume} is mounted by {seen[volume]} and {name}"
            seen[volume] = name


def test_only_the_enrolment_service_holds_the_root_key() -> None:
    services = stack()["services"]
    holders = [name for name, s in services.items() if any(x["source"] == "root_key" for x in s.get("secrets", []))]
    assert holders == ["enrol"]
    assert all("/network" not in str(s.get("volumes", [])) for s in services.values())
    assert all(s.get("environment", {}).get("IWLZ_TOKEN_FILE") for name, s in services.items() if name != "enrol")


def test_every_service_comes_back_whatever_stopped_it_and_publishes_in_host_mode() -> None:
    for name, service in stack()["services"].items():
        assert service["deploy"]["restart_policy"]["condition"] == "any", name
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name  # no IPVS needed
        for port in service.get("ports", []):
            assert port["mode"] == "host" and str(port["published"]).startswith("${"), (name, port)


def test_replicas_are_parties_of_their_own() -> None:
    replicated = stack()["services"]["zorgaanbieders"]
    assert replicated["environment"]["IWLZ_SLOT"] == "{{.Task.Slot}}"
    assert replicated["environment"]["IWLZ_AGB_BASE"]
    assert not replicated.get("volumes")  # a replacement enrols again; its predecessor is revoked


def test_the_stack_holds_every_party_of_the_demos_story_with_its_token() -> None:
    """docker/e2e.py tells the demo's story to the stack (iwlz demo --against), which needs every party of it:
    the story gained the client's daughter (his gemachtigde, a node of her own) and the stack did not, so the
    end-to-end run failed at the story ("parties.json names no dochter-jansen")."""
    from node.cli.demo import PARTIES

    services = stack()["services"]
    assert set(PARTIES) <= set(services)
    made = (ROOT / "docker" / "network.sh").read_text()
    for name in PARTIES:
        secret = next(s["source"] for s in services[name]["secrets"] if s["target"] == "token")
        token_file = stack()["secrets"][secret]["file"].rsplit("/", 1)[1]
        assert f"token {token_file.removesuffix('.token')} " in made, token_file
        role = services[name]["environment"]["IWLZ_ROLE"]
        assert role == PARTIES[name][0]
    e2e = (ROOT / "docker" / "e2e.py").read_text()
    assert all(f'"{name}": 18' in e2e for name in PARTIES)  # its admin port, where the story reaches it


def test_the_image_context_holds_only_what_the_image_needs() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!keys", "!protocol", "!node", "!pyproject.toml"} <= set(lines)


def _builder_pip_wheel() -> list[str]:
    """The Dockerfile's command that builds the project's wheel in its builder stage."""
    text = (ROOT / "Dockerfile").read_text()
    line = next(part for part in text.split("RUN ")[1:] if " wheel " in part.split("&&")[0])
    return shlex.split(line.split("&&")[0].replace("\\\n", " "))


def test_the_image_builds_the_project_as_pyproject_says(tmp_path: Path) -> None:
    """The image's builder stage, played on this machine: a venv as Python makes it (its own setuptools, 65.5 on
    3.11 and 66 in the image's Debian, older than pyproject.toml's metadata needs: a license as an SPDX
    expression), the build requirements fetched as docker/build.sh fetches them, and the Dockerfile's own
    command. Before, it built with the venv's setuptools (--no-build-isolation) and the image was not made
    ("configuration error: `project.license` must be valid exactly by one definition")."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    pip = str(venv / "bin" / "pip")
    deps, wheels, src = tmp_path / "deps", tmp_path / "wheels", tmp_path / "src"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    fetched = subprocess.run([pip, "download", "--quiet", "--only-binary=:all:", "--dest", str(deps), *requires],
                             capture_output=True, text=True, timeout=300)
    if fetched.returncode != 0:
        pytest.skip(f"the build requirements could not be fetched (no package index?): {fetched.stderr[-300:]}")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("keys", "protocol", "node"):  # as the Dockerfile copies them
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    paths = {"/opt/iwlz/bin/pip": pip, "/tmp/deps": str(deps), "/tmp/wheels": str(wheels), "/src": str(src)}
    command = [paths.get(word, word) for word in _builder_pip_wheel()]
    built = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    assert [wheel.name.split("-")[0] for wheel in wheels.glob("*.whl")] == ["iwlz_node"]


@pytest.mark.swarm
def test_the_swarm_end_to_end_script_passes() -> None:
    if os.environ.get("IWLZ_E2E_SWARM") != "1":
        pytest.skip("the swarm end-to-end run builds images and starts 100+ containers: set IWLZ_E2E_SWARM=1")
    if shutil.which("docker") is None:
        pytest.skip("no docker command on this machine (apt-get install docker.io)")
    result = subprocess.run(["sh", str(ROOT / "docker" / "e2e.sh")], capture_output=True, text=True, timeout=3600,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "every step passed" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="runs the entrypoint as an unprivileged user, as the image does (needs root and setpriv)")
def test_the_enrolment_service_starts_again_over_what_its_first_start_left(tmp_path: Path) -> None:
    """Swarm restarts a task that fails its health check, on the same volume. The entrypoint copied the root key
    (a secret, mounted 0444) with umask 077: 0400, which the same user could not write at the next start, so a
    restarted enrolment service never came back ("cp: cannot create regular file '/data/network/root.key':
    Permission denied") and every node that had still to enrol waited for it until swarm killed it too."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="iwlz-entrypoint-"))
    try:
        os.chmod(root, 0o755)
        secrets, data, bin_dir = root / "secrets", root / "data", root / "bin"
        for d in (secrets, data, bin_dir):
            d.mkdir()
        os.chmod(secrets, 0o755)
        os.chown(data, 65534, 65534)
        key, info = secrets / "root_key", secrets / "network.json"
        info.write_text("{}")
        stub = bin_dir / "iwlz"  # the service itself is not under test: what it is started with is
        stub.write_text('#!/bin/sh\necho "$@" > "$IWLZ_DATA/started"\n')
        os.chmod(bin_dir, 0o755)
        os.chmod(stub, 0o755)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "IWLZ_SERVICE": "enrol", "IWLZ_ROOT_KEY_FILE": str(key),
               "IWLZ_NETWORK_INFO_FILE": str(info), "IWLZ_DATA": str(data)}
        for start, content in enumerate(["root key 1", "root key 2"]):  # the second: the secret was rotated too
            key.write_text(content)
            os.chmod(key, 0o444)
            os.chmod(info, 0o444)
            done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh",
                                   str(ROOT / "docker" / "entrypoint.sh")], env=env, capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, f"start {start + 1}: {done.stderr}"
            assert (data / "network" / "root.key").read_text() == content
            assert (data / "network" / "root.key").stat().st_mode & 0o077 == 0  # the key stays the user's only
            assert (data / "started").read_text().startswith(f"enroll serve --network {data}/network ")
    finally:
        shutil.rmtree(root, ignore_errors=True)
