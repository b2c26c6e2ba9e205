"""A failed TLS handshake says what went wrong (it used to be an empty message)."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme

import trioactors as ta

COOKIE = "tls-errors-cookie"


def contexts(ca: trustme.CA, *names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert = ca.issue_cert(*names)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    server.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    cert.configure_cert(client)
    return server, client


def target(node: ta.Node) -> str:
    return f"{node.name}@{node.address[0]}:{node.address[1]}"


async def test_certificate_for_another_name_says_so() -> None:
    ca = trustme.CA()
    s1, c1 = contexts(ca, "alpha.example")  # not valid for 127.0.0.1
    s2, c2 = contexts(ca, "127.0.0.1")
    async with (
        ta.open_node("alpha", epmd=None, cookie=COOKIE, tls=s1, tls_client=c1) as a,
        ta.open_node("beta", epmd=None, cookie=COOKIE, tls=s2, tls_client=c2) as b,
    ):
        with pytest.raises(ta.TlsFailed, match=r"not valid for '127\.0\.0\.1'.*subjectAltName"):
            await b.connect(target(a))


async def test_untrusted_certificate_says_so() -> None:
    s1, c1 = contexts(trustme.CA(), "127.0.0.1")
    s2, c2 = contexts(trustme.CA(), "127.0.0.1")
    async with (
        ta.open_node("alpha", epmd=None, cookie=COOKIE, tls=s1, tls_client=c1) as a,
        ta.open_node("beta", epmd=None, cookie=COOKIE, tls=s2, tls_client=c2) as b,
    ):
        with pytest.raises(ta.TlsFailed, match=r"not accepted.*signed by a CA this node trusts"):
            await b.connect(target(a))


async def test_tls_node_dialling_a_plain_node(caplog: pytest.LogCaptureFixture) -> None:
    s1, c1 = contexts(trustme.CA(), "127.0.0.1")
    async with (
        ta.open_node("plain", epmd=None, cookie=COOKIE) as plain,
        ta.open_node("secure", epmd=None, cookie=COOKIE, tls=s1, tls_client=c1) as secure,
    ):
        with pytest.raises(ta.TlsFailed, match="closed the connection during the TLS handshake"):
            await secure.connect(target(plain))
        assert plain.nodes() == [] and secure.nodes() == []


async def test_plain_node_dialling_a_tls_node(caplog: pytest.LogCaptureFixture) -> None:
    s1, c1 = contexts(trustme.CA(), "127.0.0.1")
    async with (
        ta.open_node("plain", epmd=None, cookie=COOKIE) as plain,
        ta.open_node("secure", epmd=None, cookie=COOKIE, tls=s1, tls_client=c1) as secure,
    ):
        with caplog.at_level(logging.WARNING, logger="trioactors"):
            with pytest.raises(ta.ConnectionFailed, match="uses TLS closes plain connections"):
                await plain.connect(target(secure))
        # The TLS side logs what it met.
        assert "does not speak TLS" in caplog.text
