"""ImageKitStore through the real imagekitio SDK against the local ImageKit-compatible server.

Faults are injected by the server (status codes, hangs past the client timeout, dropped
connections) and the server's per-operation call counters show how many attempts were made.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from portal.config import load_settings
from portal.devtools.imagekit_server import LocalImageKitServer
from portal.services.images.imagekit import ImageKitStore
from portal.services.images.store import ImageStoreError
from tests.support.imagekit import FAST_RETRY, IMAGEKIT_TEST_KEY

PNG = b"\x89PNG\r\n\x1a\nnot-really-a-png-but-bytes"


def make_store(server: LocalImageKitServer, **overrides: object) -> ImageKitStore:
    options = {**FAST_RETRY, "timeout": 5.0, **overrides}
    return ImageKitStore(
        IMAGEKIT_TEST_KEY, server.url_endpoint, base_url=server.base_url, **options
    )


@pytest.fixture
def store(imagekit_server: LocalImageKitServer) -> ImageKitStore:
    s = make_store(imagekit_server)
    yield s
    s.close()


def record_context() -> dict[str, str]:
    return {"record_type": "Faction", "record_id": str(uuid.uuid4())}


def test_put_uploads_once_and_the_file_can_be_fetched_and_described(
    store: ImageKitStore, imagekit_server: LocalImageKitServer
) -> None:
    meta = store.put("faction/abc/k1", "dragon emblem.png", PNG, "image/png", context={})

    assert imagekit_server.calls["upload"] == 1
    assert set(meta) == {"fileId", "filePath", "url", "name"}
    assert meta["filePath"] == "/faction/abc/k1/dragon_emblem.png"
    stored = imagekit_server.files[meta["fileId"]]
    assert stored.content == PNG and stored.mime == "image/png"
    assert store.fetch(meta) == PNG
    details = store.details(meta)
    assert details["fileId"] == meta["fileId"] and details["size"] == len(PNG)
    assert details["mime"] == "image/png"


def test_url_is_built_by_the_sdk_with_transformations(store: ImageKitStore) -> None:
    meta = {"fileId": "x", "filePath": "/a/b.png", "url": "ignored", "name": "b.png"}
    assert store.url(meta) == f"{store.url_endpoint}/a/b.png"
    assert store.url(meta, [{"width": 64, "height": 64}]) == (
        f"{store.url_endpoint}/a/b.png?tr=w-64,h-64"
    )


def test_copy_is_server_side_and_lands_under_the_new_key(
    store: ImageKitStore, imagekit_server: LocalImageKitServer
) -> None:
    source = store.put("weapon/1/k1", "sword.png", PNG, "image/png", context={})

    copy = store.copy(source, "weapon/2/k2", context=record_context())

    assert imagekit_server.calls["upload"] == 1  # the original only: no bytes re-uploaded
    assert imagekit_server.calls["copy"] == 1
    assert copy["fileId"] != source["fileId"]
    assert copy["filePath"] == "/weapon/2/k2/sword.png"
    assert store.fetch(copy) == PNG
    assert imagekit_server.file_at(source["filePath"]) is not None  # source untouched


def test_copy_without_a_source_path_downloads_and_uploads(
    store: ImageKitStore, imagekit_server: LocalImageKitServer
) -> None:
    source = store.put("weapon/1/k1", "sword.png", PNG, "image/png", context={})
    legacy_meta = {"fileId": source["fileId"], "url": source["url"], "name": "sword.png"}

    copy = store.copy(legacy_meta, "weapon/3/k3", context=record_context())

    assert imagekit_server.calls["copy"] == 0
    assert imagekit_server.calls["fetch"] == 1 and imagekit_server.calls["upload"] == 2
    assert store.fetch(copy) == PNG and copy["fileId"] != source["fileId"]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_status_is_retried_until_it_succeeds(
    store: ImageKitStore, imagekit_server: LocalImageKitServer, status: int
) -> None:
    imagekit_server.fail_next("upload", status=status, times=2)

    meta = store.put("retry/k", "a.png", PNG, "image/png", context=record_context())

    assert imagekit_server.calls["upload"] == 3
    assert imagekit_server.files[meta["fileId"]].content == PNG
    assert len(imagekit_server.files) == 1


def test_a_timeout_is_retried(imagekit_server: LocalImageKitServer) -> None:
    store = make_store(imagekit_server, timeout=0.3)
    meta = store.put("t/k", "a.png", PNG, "image/png", context={})
    imagekit_server.fail_next("details", mode="timeout", delay=1.0)

    details = store.details(meta, context=record_context())

    assert details["fileId"] == meta["fileId"]
    assert imagekit_server.calls["details"] == 2
    store.close()


def test_a_dropped_connection_is_retried(
    store: ImageKitStore, imagekit_server: LocalImageKitServer
) -> None:
    imagekit_server.fail_next("upload", mode="drop")
    imagekit_server.fail_next("copy", mode="drop")

    source = store.put("d/k1", "a.png", PNG, "image/png", context={})
    copy = store.copy(source, "d/k2", context={})

    assert imagekit_server.calls["upload"] == 2 and imagekit_server.calls["copy"] == 2
    assert store.fetch(copy) == PNG


def test_a_failing_fetch_is_retried(
    store: ImageKitStore, imagekit_server: LocalImageKitServer
) -> None:
    meta = store.put("f/k", "a.png", PNG, "image/png", context={})
    imagekit_server.fail_next("fetch", status=503)
    imagekit_server.fail_next("fetch", mode="drop")

    assert store.fetch(meta) == PNG
    assert imagekit_server.calls["fetch"] == 3


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_a_client_error_is_not_retried(
    store: ImageKitStore, imagekit_server: LocalImageKitServer, status: int
) -> None:
    imagekit_server.fail_next("upload", status=status, times=5)

    with pytest.raises(ImageStoreError, match=str(status)):
        store.put("c/k", "a.png", PNG, "image/png", context=record_context())

    assert imagekit_server.calls["upload"] == 1
    assert imagekit_server.files == {}


def test_a_wrong_private_key_is_a_401_and_not_retried(
    imagekit_server: LocalImageKitServer,
) -> None:
    store = ImageKitStore(
        "wrong-key", imagekit_server.url_endpoint, base_url=imagekit_server.base_url, **FAST_RETRY
    )
    with pytest.raises(ImageStoreError, match="401") as info:
        store.put("c/k", "a.png", PNG, "image/png", context={})
    assert imagekit_server.calls["upload"] == 1
    assert "wrong-key" not in str(info.value)
    store.close()


def test_a_permanent_failure_names_the_record_and_the_error(
    store: ImageKitStore, imagekit_server: LocalImageKitServer, caplog: pytest.LogCaptureFixture
) -> None:
    imagekit_server.fail_next("upload", status=503, times=100)
    context = record_context()

    with (
        caplog.at_level(logging.INFO, logger="portal.images"),
        pytest.raises(ImageStoreError) as info,
    ):
        store.put("p/k", "a.png", PNG, "image/png", context=context)

    message = str(info.value)
    assert f"Faction {context['record_id']}" in message
    assert "503" in message and "after 4 attempt(s)" in message
    assert imagekit_server.calls["upload"] == FAST_RETRY["attempts"]
    attempts = [r for r in caplog.records if r.getMessage() == "imagekit.attempt"]
    assert [(r.attempt, r.outcome) for r in attempts] == [
        (1, "retry"),
        (2, "retry"),
        (3, "retry"),
        (4, "failed"),
    ]
    assert all(r.record_id == context["record_id"] and r.status == 503 for r in attempts)
    assert all(IMAGEKIT_TEST_KEY not in r.getMessage() for r in caplog.records)
    assert all(IMAGEKIT_TEST_KEY not in str(vars(r)) for r in caplog.records)


def test_a_server_that_never_answers_in_time_gives_up(
    imagekit_server: LocalImageKitServer,
) -> None:
    store = make_store(imagekit_server, timeout=0.2, attempts=2)
    imagekit_server.fail_next("upload", mode="timeout", times=2, delay=0.6)

    with pytest.raises(ImageStoreError, match="APITimeoutError"):
        store.put("p/k", "a.png", PNG, "image/png", context=record_context())
    assert imagekit_server.calls["upload"] == 2
    store.close()


def test_delete_removes_the_file_and_an_already_gone_file_is_fine(
    store: ImageKitStore, imagekit_server: LocalImageKitServer
) -> None:
    meta = store.put("x/k", "a.png", PNG, "image/png", context={})
    imagekit_server.fail_next("delete", status=502)

    store.delete(meta, context={})
    assert imagekit_server.files == {}
    assert imagekit_server.calls["delete"] == 2

    store.delete(meta, context={})  # a 404: already gone, not an error
    assert imagekit_server.calls["delete"] == 3


def test_from_settings_uses_the_imagekit_variables(
    imagekit_server: LocalImageKitServer, tmp_path: object
) -> None:
    settings = load_settings(
        {
            "IMAGEKIT_PRIVATE_KEY": IMAGEKIT_TEST_KEY,
            "IMAGEKIT_BASE_URL": imagekit_server.base_url,
            "IMAGEKIT_URL_ENDPOINT": imagekit_server.url_endpoint,
            "SECRET_KEY": "x" * 32,
        },
        tmp_path,  # type: ignore[arg-type]
    )
    store = ImageKitStore.from_settings(settings, **FAST_RETRY)

    meta = store.put("s/k", "a.png", PNG, "image/png", context={})

    assert imagekit_server.calls["upload"] == 1 and store.fetch(meta) == PNG
    assert store.service_name == "imagekit" and IMAGEKIT_TEST_KEY not in repr(store)
    store.close()
