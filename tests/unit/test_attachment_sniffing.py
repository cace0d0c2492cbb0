"""Attachment settings and content sniffing: pure logic, no server needed (the API side is
tests/api/test_attachments.py)."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from chat_service.attachments import sniff
from chat_service.attachments.settings import (
    load_attachment_settings,
)
from chat_service.config import ConfigError

# ---- pure logic: settings and sniffing (no server needed) ----

MIB = 1024 * 1024


def test_attachment_settings_defaults_and_env() -> None:
    d = load_attachment_settings({})
    assert d.max_bytes == 25 * MIB and d.store == "postgres" and d.orphan_ttl_seconds == 7_200
    assert d.allowed_types == (
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain",
        "application/zip",
    )
    assert not d.s3_configured
    s = load_attachment_settings({
        "ATTACHMENT_MAX_BYTES": "1000", "ATTACHMENT_ALLOWED_TYPES": "image/png, Text/Plain",
        "ATTACHMENT_STORE": "s3", "S3_BUCKET": "b", "S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s", "S3_REGION": "eu-west-1",
        "ATTACHMENT_ORPHAN_TTL_SECONDS": "60",
    })
    assert (s.max_bytes, s.allowed_types, s.store) == (1000, ("image/png", "text/plain"), "s3")
    assert (s.s3.bucket, s.s3.region, s.orphan_ttl_seconds) == ("b", "eu-west-1", 60)
    for bad in (
        {"ATTACHMENT_STORE": "ftp"},
        {"ATTACHMENT_STORE": "s3"},
        {"ATTACHMENT_MAX_BYTES": "lots"},
        {"ATTACHMENT_MAX_BYTES": "0"},
        {"ATTACHMENT_ALLOWED_TYPES": "png"},
        {"S3_ACCESS_KEY_ID": "k"},
    ):
        with pytest.raises(ConfigError):
            load_attachment_settings(bad)


def image_bytes(fmt: str, size: tuple[int, int] = (37, 21)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_images_are_detected_and_measured_from_their_bytes(fmt: str, mime: str) -> None:
    data = image_bytes(fmt)
    assert sniff.detect(data[: sniff.HEAD_BYTES], complete=True) == mime
    assert sniff.image_size(data, mime, whole=True) == (37, 21)
    with pytest.raises(sniff.Refused, match="not a valid"):
        sniff.image_size(data[:12] + bytes(200), mime, whole=True)


def test_detection_of_documents_executables_markup_and_text() -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a.txt", "hello")
    cases = {
        b"%PDF-1.7\n": "application/pdf",
        zipped.getvalue(): "application/zip",
        b"MZ\x90\x00" + bytes(100): "application/x-msdownload",
        b"\x7fELF\x02\x01" + bytes(100): "application/x-executable",
        b"  <!doctype HTML><p>hi": "text/html",
        b"<html><body>": "text/html",
        b"<?xml version='1.0'?><svg/>": "image/svg+xml",
        b"<?xml version='1.0'?><note/>": "application/xml",
        "plain ünïcode\n".encode(): "text/plain",
        b"a < b and <c": "text/plain",
        # Texts that start like short signatures (bitmap "BM", executable "MZ", mp3 "ID3").
        b"BMI report\n": "text/plain",
        b"MZ Industries\n": "text/plain",
        b"ID3 tags\n": "text/plain",
        b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00": "image/bmp",
        b"%PDF-1.4 all ascii": "application/pdf",
        b"\x00\x01\x02\x03 binary": "application/octet-stream",
        b"\xff\xfe not utf-8": "application/octet-stream",
    }
    for data, mime in cases.items():
        assert sniff.detect(data, complete=True) == mime, data
    # A head cut inside a multi-byte character is still text; a whole file is not.
    cut = "é".encode() * 10 + b"\xc3"
    assert sniff.detect(cut, complete=False) == "text/plain"
    assert sniff.detect(cut, complete=True) == "application/octet-stream"


def test_claims_must_match_the_bytes() -> None:
    allowed = load_attachment_settings({}).allowed_types
    png_head = image_bytes("PNG")
    for claim in ("image/png", "IMAGE/PNG", "image/x-png", "", "application/octet-stream"):
        assert sniff.check(png_head, claimed=claim, allowed=allowed, complete=True) == "image/png"
    with pytest.raises(sniff.Refused, match="image/png, not image/jpeg as declared"):
        sniff.check(png_head, claimed="image/jpeg", allowed=allowed, complete=True)
    with pytest.raises(sniff.Refused, match=r"text/html \(an HTML document\).*not an allowed"):
        sniff.check(b"<html>", claimed="text/plain", allowed=allowed, complete=True)
    assert sniff.check(b"a,b\n1,2\n", claimed="text/csv", allowed=allowed, complete=True) == (
        "text/plain"
    )
    assert sniff.claim_allowed("image/jpg", allowed) and sniff.claim_allowed("text/csv", allowed)
    assert not sniff.claim_allowed("text/html", allowed)
    assert not sniff.claim_allowed("application/x-msdownload", allowed)


def test_text_is_checked_to_the_last_byte() -> None:
    text = "ça va? 🙂\n".encode() * 100
    v = sniff.TextValidator()
    for i in range(0, len(text), 7):  # splits multi-byte characters
        v.feed(text[i : i + 7])
    v.finish()
    v = sniff.TextValidator()
    v.feed(b"ok")
    with pytest.raises(sniff.Refused, match="NUL byte at offset 3"):
        v.feed(b"o\x00")
    v = sniff.TextValidator()
    v.feed(b"ok \xc3")
    with pytest.raises(sniff.Refused, match="truncated"):
        v.finish()
