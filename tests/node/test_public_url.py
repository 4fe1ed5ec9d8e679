"""The URL a node tells its peers to reach it at."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.errors import ConfigError
from node.home import NetworkDir, NodeHome
from node.service import Node
from tests.helpers import NOW


def test_a_public_url_peers_would_refuse_stops_the_node_before_it_starts(tmp_path: Path) -> None:
    """The node announces its public URL: one peers refuse would leave it unreachable, so it does not start."""
    net = NetworkDir.create(tmp_path / "net", "test")
    home = NodeHome.create(tmp_path / "ciz", role="ciz", name="CIZ", identifiers={"kvk": "62253778"}, region=None)
    net.issue(home, now=NOW, days=1)
    Node(home, public_url="https://ciz.example.nl:8700")
    for bad in ("https://zorg-ñ.example", "http://ciz.example.nl\n", "ciz.example.nl:8700", "https://gw.example/?node=ciz"):
        with pytest.raises(ConfigError, match="public URL must be an http"):
            Node(home, public_url=bad)
