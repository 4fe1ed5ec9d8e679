"""The examples run and say what they promise."""

import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sans_io_example() -> None:
    out = run("envelope_sans_io.py")
    assert "CIZ verified a query from Example zorgkantoor (zorgkantoor)" in out
    assert "refused with code 'replay'" in out


def test_two_nodes_example() -> None:
    left_before = set(Path(tempfile.gettempdir()).glob("iwlz-example-*"))
    out = run("two_nodes.py")
    assert set(Path(tempfile.gettempdir()).glob("iwlz-example-*")) <= left_before  # its keys and data are gone
    assert "('NIEUWE_INDICATIE_ZORGKANTOOR', 'fetched', 1)" in out
    assert "signed by CIZ" in out and "(True, 4, 'chain intact')" in out
