"""TLS from the files the ``chasqui`` CLI takes (--tls-ca, --tls-cert,
--tls-key): the CA that signs the edge's certificate and, where the edge
asks for one, the client's certificate and key."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

import grpc

__all__ = ["TLSFiles", "is_loopback"]


@dataclass(frozen=True)
class TLSFiles:
    """Paths of PEM files.

    Attributes:
        ca: the CA that signs the edge's certificate (required).
        cert, key: the client's certificate and key, both or neither (mutual
            TLS, where the edge asks for a client certificate).
    """

    ca: str
    cert: Optional[str] = None
    key: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        """Reads the files and returns gRPC channel credentials.

        Raises:
            ValueError: only one of cert and key is given.
            OSError: a file cannot be read.
        """
        if bool(self.cert) != bool(self.key):
            raise ValueError("chasqui: TLSFiles needs both cert and key, or neither")
        with open(self.ca, "rb") as f:
            ca = f.read()
        cert = key = None
        if self.cert and self.key:
            with open(self.cert, "rb") as f:
                cert = f.read()
            with open(self.key, "rb") as f:
                key = f.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def is_loopback(target: str) -> bool:
    """Whether a "host:port" target is on this machine (a bearer token may
    then travel without TLS, as the CLI allows)."""
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
