"""Image files: only raster bytes are accepted or served, and served as what the bytes are."""

from __future__ import annotations

import pytest

from portal.services.images.backend import get_image_store
from portal.services.images.rasters import raster_problem, raster_type
from portal.services.template.pictures import render_picture

PNG = render_picture("icon", 1)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 40
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 40
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'


@pytest.mark.parametrize(
    ("content", "mime"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
def test_raster_bytes_are_recognised(content, mime):
    assert raster_type(content) == mime
    assert raster_problem(content, mime, 1000) is None


@pytest.mark.parametrize(
    ("content", "declared", "message"),
    [
        (HTML, "image/png", "declared image/png but the bytes are HTML, not an image"),
        (SVG, "image/png", "declared image/png but the bytes are SVG, not an image"),
        (SVG, "image/svg+xml", "content_type 'image/svg+xml' is not accepted"),
        (JPEG, "image/png", "declared image/png but the bytes are image/jpeg"),
        (PNG, "text/html", "content_type 'text/html' is not accepted"),
        (PNG * 10, "image/png", f"is {len(PNG) * 10} bytes; the limit is 100"),
        (b"", "image/png", "is empty"),
    ],
)
def test_everything_else_is_refused_with_a_reason(content, declared, message):
    limit = 100 if content == PNG * 10 else 10_000
    assert raster_problem(content, declared, limit).startswith(message)


def _put(key: str, content: bytes) -> None:
    get_image_store().put(key, key.rsplit("/", 1)[-1], content, "image/png", context={})


def test_a_stored_image_is_served_with_its_verified_type_nosniff_and_a_csp(app):
    _put("served/looks-like-a-page.html", PNG)  # the key's extension must not decide the type
    _put("served/photo.png", JPEG)
    client = app.test_client()
    response = client.get("/images/served/looks-like-a-page.html")
    assert response.status_code == 200 and response.data == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp
    response = client.get("/images/served/photo.png")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize("content", [HTML, SVG, b"plain text"])
def test_a_stored_file_that_is_not_a_raster_image_is_not_served(app, content):
    _put("served/evil.png", content)
    response = app.test_client().get("/images/served/evil.png")
    assert response.status_code == 404
    assert b"<script" not in response.data and b"<svg" not in response.data


def test_missing_and_unsafe_keys_are_404(app):
    client = app.test_client()
    assert client.get("/images/served/nothing.png").status_code == 404
    assert client.get("/images/../secret").status_code == 404
