"""TLS with the CLI's files: the CA that signs the server's certificate,
and a client pair where the server asks for one. Certificates are made
with Debian's openssl for each run."""

from __future__ import annotations

import os
import subprocess
from concurrent import futures
from typing import Dict

import grpc
import pytest

import chasqui
from chasqui.edge.v1 import edge_pb2_grpc
from chasqui.policy import RetryPolicy
from test_policy import FlakyEdge


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    d = str(tmp_path_factory.mktemp("pki"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=chasqui test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\n"), ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d,
        )
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def _read(p: str) -> bytes:
    with open(p, "rb") as f:
        return f.read()


@pytest.fixture
def mtls_server(pki):
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    edge_pb2_grpc.add_EdgeServiceServicer_to_server(FlakyEdge(), srv)
    creds = grpc.ssl_server_credentials(
        [(_read(pki["server.key"]), _read(pki["server.pem"]))],
        root_certificates=_read(pki["ca.pem"]),
        require_client_auth=True,
    )
    port = srv.add_secure_port("127.0.0.1:0", creds)
    srv.start()
    yield f"127.0.0.1:{port}"
    srv.stop(None)


ONE_TRY = RetryPolicy(max_attempts=1, per_attempt_timeout=5)


def test_mutual_tls_with_the_cli_files(pki, mtls_server, driver):
    tls = chasqui.TLSFiles(ca=pki["ca.pem"], cert=pki["client.pem"], key=pki["client.key"])
    c = driver.client(mtls_server, tls=tls, policy=ONE_TRY)
    assert c.start_observation("X").transaction_id


def test_server_asking_for_a_client_cert_refuses_none(pki, mtls_server, driver):
    policy = RetryPolicy(max_attempts=1, per_attempt_timeout=1)
    c = driver.client(mtls_server, tls=chasqui.TLSFiles(ca=pki["ca.pem"]), policy=policy)
    with pytest.raises(grpc.RpcError) as e:
        c.start_observation("X")
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_half_a_client_pair_is_refused(pki):
    with pytest.raises(ValueError, match="both cert and key"):
        chasqui.TLSFiles(ca=pki["ca.pem"], cert=pki["client.pem"]).credentials()
