"""Content-addressed blobs: keys, compression, dedup, and corruption caught before use."""

import hashlib
import io
import os

import pytest

from mflow.errors import CorruptBlobError, NotFoundError, PathspecError
from mflow.store import blobs as blobs_module
from mflow.store.layout import blob_path


@pytest.fixture
def store(store_under_test):
    store = store_under_test.open()
    yield store
    store.close()


def test_key_is_sha256_of_content(store):
    for data in (b"", b"hello", os.urandom(100_000)):
        info = store.blobs.put(data)
        assert info.key == hashlib.sha256(data).hexdigest()
        assert info.size == len(data)
        assert store.blobs.get(info.key) == data
        assert store.blobs.has(info.key)



def test_sha256_matches_hashlib_across_the_switch_to_openssl():
    from mflow.store import sha

    for size in (0, 1, sha.SMALL - 1, sha.SMALL, sha.SMALL + 1, 3 * sha.SMALL):
        data = os.urandom(size)
        assert sha.sha256_hex(data) == hashlib.sha256(data).hexdigest()
        # Written in pieces, one buffer reused for each: the kept bytes are copies.
        digest, buffer, step = sha.Sha256(), bytearray(), 70_001
        for start in range(0, size, step):
            buffer[:] = data[start : start + step]
            digest.update(memoryview(buffer))
        buffer[:] = b"x" * len(buffer)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        assert digest.digest() == hashlib.sha256(data).digest()

def test_compresses_only_where_it_pays(store):
    zeros = bytes(3 << 20)
    noise = os.urandom(3 << 20)
    packed = store.blobs.put(zeros)
    raw = store.blobs.put(noise)
    assert packed.stored_size < len(zeros) / 50
    assert raw.size <= raw.stored_size < raw.size + 100  # framing only
    mixed = noise + zeros + noise + zeros  # compressed frame by frame
    info = store.blobs.put(mixed)
    assert info.stored_size < len(mixed) * 0.6
    assert store.blobs.get(info.key) == mixed


def test_stream_roundtrip_in_frames(store):
    data = os.urandom(9 << 20) + bytes(6 << 20)
    info = store.blobs.put_stream(io.BytesIO(data))
    assert info.key == hashlib.sha256(data).hexdigest()
    with store.blobs.open(info.key) as stream:
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]


def test_same_bytes_are_stored_once(store):
    data = os.urandom(1000)
    first = store.blobs.put(data)
    second = store.blobs.put(data)
    assert first == second
    assert [key for key, _ in store.blobs.list()] == [first.key]


def test_unknown_and_malformed_keys(store):
    with pytest.raises(NotFoundError):
        store.blobs.get("0" * 64)
    assert not store.blobs.has("0" * 64)
    with pytest.raises(PathspecError):
        store.blobs.get("not-a-key")


def corrupt(store, key, mutate):
    path = blob_path(key)
    stored = bytearray(store.backend.get(path))
    mutate(stored)
    store.backend.put(path, bytes(stored))


@pytest.mark.parametrize("size", [1000, blobs_module.SMALL_READ + (1 << 20)], ids=["small", "large"])
def test_flipped_byte_is_reported_as_corrupt(store, size):
    data = os.urandom(size)
    info = store.blobs.put(data)

    def flip(stored):
        stored[len(stored) // 2] ^= 0x01

    corrupt(store, info.key, flip)
    with pytest.raises(CorruptBlobError, match="does not hash to its key") as caught:
        store.blobs.open(info.key)
    assert info.key in str(caught.value) and store.url in str(caught.value)
    with pytest.raises(CorruptBlobError):
        store.blobs.verify(info.key)


def test_truncated_and_damaged_blobs_are_corrupt(store):
    info = store.blobs.put(bytes(100_000))
    corrupt(store, info.key, lambda stored: stored.__delitem__(slice(len(stored) - 10, None)))
    with pytest.raises(CorruptBlobError, match="truncated"):
        store.blobs.get(info.key)
    info = store.blobs.put(b"some text " * 100)
    corrupt(store, info.key, lambda stored: stored.__setitem__(slice(0, 4), b"XXXX"))
    with pytest.raises(CorruptBlobError, match="marker"):
        store.blobs.get(info.key)
    info = store.blobs.put(bytes(200_000))  # one zlib frame: damage its compressed bytes

    def scramble(stored):
        stored[20:40] = os.urandom(20)

    corrupt(store, info.key, scramble)
    with pytest.raises(CorruptBlobError):
        store.blobs.get(info.key)


def test_copy_between_stores_keeps_keys(store, tmp_path):
    from mflow.store import open_store

    other = open_store(str(tmp_path / "other"))
    small = store.blobs.put(b"small")
    large = store.blobs.put(os.urandom(10 << 20))
    for info in (small, large):
        copied = store.blobs.copy_to(other.blobs, info.key)
        assert copied == info
        assert other.blobs.get(info.key) == store.blobs.get(info.key)
    corrupt(store, small.key, lambda stored: stored.__setitem__(-1, stored[-1] ^ 0xFF))
    other.blobs.delete(small.key)
    with pytest.raises(CorruptBlobError):
        store.blobs.copy_to(other.blobs, small.key)
    assert not other.blobs.has(small.key)
