"""Network namespaces that a test makes for itself: two hosts joined by a bridge in a third namespace.

Needs root and iproute2; everything made here is removed afterwards, and the
traffic between the hosts never leaves them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@contextmanager
def bridged_pair(prefix: str, subnet: str, *, multicast: bool = False) -> Iterator[dict[str, str]]:
    """Namespaces ``a`` and ``b`` at ``subnet``.1 and .2, each with a veth into a bridge in namespace ``bridge``;
    ``b_port`` is b's port on the bridge (set it down for a partition)."""
    tag = f"{os.getpid() % 100000}"
    bridge, names = f"{prefix}br{tag}", {"a": f"{prefix}a{tag}", "b": f"{prefix}b{tag}"}
    made: list[str] = []
    try:
        for ns in (bridge, *names.values()):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", bridge, "link", "set", "br0", "up")
        for i, (key, ns) in enumerate(names.items(), start=1):
            veth, port = f"{prefix}v{key}{tag}", f"{prefix}p{key}{tag}"
            sh("ip", "link", "add", veth, "netns", ns, "type", "veth", "peer", "name", port, "netns", bridge)
            sh("ip", "-n", bridge, "link", "set", port, "master", "br0")
            sh("ip", "-n", bridge, "link", "set", port, "up")
            sh("ip", "-n", ns, "addr", "add", f"{subnet}.{i}/24", "dev", veth)
            sh("ip", "-n", ns, "link", "set", veth, "up")
            if multicast:
                sh("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", veth)
        yield {"a": names["a"], "b": names["b"], "bridge": bridge, "b_port": f"{prefix}pb{tag}",
               "a_ip": f"{subnet}.1", "b_ip": f"{subnet}.2"}
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


__all__ = ["available", "sh", "bridged_pair"]
