"""Unit tests need neither the engine nor the network: a connection to anything but loopback fails."""

import ipaddress
import socket

import pytest

_connect = socket.socket.connect


def _loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise AssertionError(
                f"a unit test reached the network ({host}:{address[1]}): "
                "move it to tests/network, or serve the data on 127.0.0.1"
            )
    return _connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
