"""Two endpoints of one network: alice (a zorgkantoor) and bob (the CIZ)."""

import pytest

from protocol import Endpoint
from tests.helpers import Network, seeded


@pytest.fixture
def net() -> Network:
    return Network()


@pytest.fixture
def alice(net: Network) -> Endpoint:
    return net.endpoint(seeded(2), "zorgkantoor")


@pytest.fixture
def bob(net: Network) -> Endpoint:
    return net.endpoint(seeded(3), "ciz")
