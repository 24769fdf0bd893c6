"""Where a channel's feed documents and processing reports live: a local folder (the embedded default,
`<data>/feeds/<channel>/`) or an S3 prefix (the deployed mode, `State.feeds_path(channel)`), so a run in a pod with
an empty disk reads what an earlier run wrote. Dagster-free.

Names are relative to the channel's folder and `/`-separated (`POST_FLAT_FILE_INVLOADER_DATA.txt`,
`JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-0001.json`, `reports/<feed_id>.json`). Every write is atomic for a reader of
one document: a local file is renamed into place, an S3 object is one PUT. Replacing a folder is atomic locally (a
renamed folder); on S3 the new documents are put first and the stale ones deleted after, so a reader listing in
between may also see a stale document numbered past the new ones (runs of one channel do not overlap: see
deploy/README.md).
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

from feeds.files import atomic_target, staged_dir, write_atomic
from resources.state import State, state_from_env

__all__ = ["FeedStore", "LocalFeedStore", "S3FeedStore", "StoredFile", "channel_feeds", "feed_store_at"]


@dataclass(frozen=True)
class StoredFile:
    name: str  # relative to the channel's folder
    location: str  # a local path or an s3:// URL
    size: int
    modified: datetime


class FeedStore(ABC):
    """A channel's folder of feed documents and reports."""

    location: str

    @abstractmethod
    def write(self, name: str, data: bytes) -> str:
        """Store `data` as `name` atomically; returns its location."""

    @abstractmethod
    def target(self, name: str) -> Any:
        """Context manager: a local path for a writer (e.g. DuckDB's COPY), stored as `name` when the block
        succeeds."""

    @abstractmethod
    def staged(self, name: str) -> Any:
        """Context manager: an empty local folder for a writer (e.g. DuckDB's COPY); when the block succeeds, folder
        `name` holds exactly its files."""

    @abstractmethod
    def files(self, folder: str = "") -> list[StoredFile]:
        """The documents directly in `folder` (temporary files of an unfinished write excluded), sorted by name."""

    @abstractmethod
    def stat(self, name: str) -> StoredFile:
        """The stored document `name` (FileNotFoundError when absent)."""

    @abstractmethod
    def open(self, name: str) -> Any:
        """Context manager: the document's bytes as a binary file object."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the stored document `name` (no error when absent)."""

    @abstractmethod
    def spool_dir(self) -> Path | None:
        """Where large temporaries of a writer go: the local folder itself, or None (the process's temp dir)."""


class LocalFeedStore(FeedStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def write(self, name: str, data: bytes) -> str:
        return str(write_atomic(self.root / name, data))

    def target(self, name: str) -> Any:
        return atomic_target(self.root / name)

    def staged(self, name: str) -> Any:
        return staged_dir(self.root / name)

    def files(self, folder: str = "") -> list[StoredFile]:
        base = self.root / folder if folder else self.root
        paths = sorted(p for p in base.glob("*") if not p.name.startswith(".") and p.is_file())
        return [self._stored(path) for path in paths]

    def stat(self, name: str) -> StoredFile:
        path = self.root / name
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return self._stored(path)

    def open(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")  # noqa: SIM115 - the caller's `with` closes it

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def spool_dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def _stored(self, path: Path) -> StoredFile:
        st = path.stat()
        name = path.relative_to(self.root).as_posix()
        return StoredFile(name, str(path), st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))


class S3FeedStore(FeedStore):
    """`s3://<bucket>/<prefix>/`: one object per document."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def write(self, name: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)
        return f"{self.location}/{name}"

    @contextmanager
    def target(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="feed-") as tmp:
            path = Path(tmp) / Path(name).name
            yield path
            self.client.upload_file(str(path), self.bucket, self._key(name))

    @contextmanager
    def staged(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="feed-") as tmp:
            yield Path(tmp)
            stale = {stored.name for stored in self.files(name)}
            for path in sorted(Path(tmp).iterdir()):
                relative = f"{name}/{path.name}"
                self.client.upload_file(str(path), self.bucket, self._key(relative))
                stale.discard(relative)
            for relative in sorted(stale):
                self.client.delete_object(Bucket=self.bucket, Key=self._key(relative))

    def files(self, folder: str = "") -> list[StoredFile]:
        folder = folder.strip("/")
        prefix = self._key(folder) + "/" if folder else (f"{self.prefix}/" if self.prefix else "")
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            for item in page.get("Contents", []):
                base = item["Key"][len(prefix) :]
                if base and not base.startswith("."):
                    found.append(self._stored(item["Key"], item["Size"], item["LastModified"]))
        return sorted(found, key=lambda stored: stored.name)

    def stat(self, name: str) -> StoredFile:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"{self.location}/{name}") from None
            raise
        return self._stored(self._key(name), head["ContentLength"], head["LastModified"])

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        try:
            yield body
        finally:
            body.close()

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def spool_dir(self) -> None:
        return None

    def _stored(self, key: str, size: int, modified: datetime) -> StoredFile:
        name = key[len(self.prefix) + 1 :] if self.prefix else key
        return StoredFile(name, f"s3://{self.bucket}/{key}", size, modified)


def s3_client() -> Any:
    """boto3's S3 client with the environment's region and endpoint (`AWS_ENDPOINT_URL_S3`: a moto server)."""
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.client("s3", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None)


def feed_store_at(location: str) -> FeedStore:
    """The store at `s3://bucket/prefix`, `file:///path` or `/path`."""
    url = urlparse(location)
    if url.scheme == "s3":
        return S3FeedStore(s3_client(), url.netloc, url.path)
    if url.scheme in ("file", ""):
        return LocalFeedStore(url.path)
    raise ValueError(f"feed documents cannot be stored at {location!r} (s3://bucket/prefix or a local path)")


def channel_feeds(channel: str, local_dir: str | os.PathLike[str], state: State | None = None) -> FeedStore:
    """The channel's feed folder: `local_dir` in the embedded default, `State.feeds_path(channel)` when deployed."""
    state = state_from_env() if state is None else state
    if not state.deployed:
        return LocalFeedStore(local_dir)
    return feed_store_at(state.feeds_path(channel))
