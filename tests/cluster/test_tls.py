"""TLS end to end: clients → Envoy (TLS from a self-signed certificate made by openssl) → pods
that serve TLS themselves (TLS_CERT_FILE / TLS_KEY_FILE), Envoy verifying them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chat_devstack import envoy_config
from chat_devstack.cluster import Cluster, envoy_binary
from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.processes import ServiceProcess, wait_serving
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is required (Debian package openssl)"
    key, cert = folder / "tls.key", folder / "tls.crt"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_topology(
    stack: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, bytes, list[ServiceProcess]]]:
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)
    env = {**stack.env, "TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)}
    pods = [ServiceProcess(f"tls-{i}", env, free_port(), folder).start() for i in range(2)]
    port, admin, probes = free_port(), free_port(), free_port()
    config = folder / "envoy.json"
    config.write_text(envoy_config.render(
        listen_host="127.0.0.1", listen_port=port, admin_port=admin, probes_port=probes,
        public_health=True,  # wait_serving below asks Health/Check through Envoy
        upstreams=[envoy_config.Upstream("127.0.0.1", p.grpc_port) for p in pods],
        tls_cert_file=str(cert), tls_key_file=str(key),
        upstream_tls=True, upstream_ca_file=str(cert),
    ))
    envoy = subprocess.Popen(
        [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--base-id", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        wait_serving(f"localhost:{port}", root_cert=cert.read_bytes())
        yield f"localhost:{port}", cert.read_bytes(), pods
    finally:
        envoy.terminate()
        envoy.wait(10)
        for pod in pods:
            pod.stop()


async def test_a_client_chats_over_tls_through_envoy(
    stack: Cluster, tls_topology: tuple[str, bytes, list[ServiceProcess]]
) -> None:
    address, root, pods = tls_topology
    creds = grpc.ssl_channel_credentials(root_certificates=root)
    async with grpc.aio.secure_channel(address, creds) as channel:
        alice = ChatClient(channel, mint(stack.jwt_secret, 4711, name="TLS"), 4711)
        group = await alice.create_group("over tls")
        stream = await alice.subscribe()
        sent = await alice.send(group.id, "encrypted all the way")
        got = await stream.wait_messages(1, group.id)
        assert got[0].id == sent.id
        await stream.close()
    # the pods themselves refuse plaintext
    async with grpc.aio.insecure_channel(pods[0].address) as plain:
        client = ChatClient(plain, mint(stack.jwt_secret, 4711), 4711)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.stub.ListMyGroups(pb.ListMyGroupsRequest(), metadata=client.metadata,
                                           timeout=3)
        assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                        grpc.StatusCode.DEADLINE_EXCEEDED)
