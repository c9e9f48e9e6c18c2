"""S3 store (boto3, also S3-compatible servers such as SeaweedFS or MinIO).

Writes are whole-object PUTs, so readers never see half an object; ``overwrite=False`` uses
``put_object(IfNoneMatch='*')`` and a 412 answer means the object is already there. Renders
and exports never change under their key, so they are served ``immutable``; manifests and
reports are rewritten and get ``no-cache``. Retries with exponential backoff are botocore's
``standard`` mode (``max_attempts`` attempts in all); once they are spent, or on an error that
is not retried (access denied), the call raises ``StoreError`` naming the object, endpoint and
cause. The endpoint comes from ``$BRANDBATCH_S3_ENDPOINT``, else ``$AWS_ENDPOINT_URL``, else
AWS; credentials and region from the usual AWS settings.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Any

from settings import load_settings
from store.base import StoreError, check_key
from store.keys import in_renders

IMMUTABLE = "public, max-age=31536000, immutable"
REWRITTEN = "no-cache"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix/"); errors name the bad value."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not url.startswith("s3://") or not bucket:
        raise ValueError(f"S3 location must look like s3://bucket/prefix but is {url!r}")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, f"{prefix}/" if prefix else ""


def cache_control(key: str) -> str:
    """Renders are content-addressed (by job key), so immutable; everything else may be
    rewritten under its key (exports are replaced after a reroll or deleted when their
    approval is withdrawn), so caches must revalidate it."""
    return IMMUTABLE if in_renders(key) else REWRITTEN


class S3Store:
    """The ``Store`` protocol on one bucket + key prefix. Picklable: each process makes its
    own client on first use."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, max_attempts: int = 5) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.root = f"s3://{self.bucket}/{self.prefix}"
        self.endpoint_url = (endpoint_url or load_settings().s3_endpoint
                             or os.environ.get("AWS_ENDPOINT_URL") or None)
        self.max_attempts = max_attempts
        self._client: Any = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                            connect_timeout=10, read_timeout=60)
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _failed(self, action: str, where: str, exc: Exception) -> StoreError:
        return StoreError(f"S3 {action} {where} failed (endpoint {self.endpoint_url or 'AWS'}, "
                          f"{self.max_attempts} attempts at most): {exc}")

    def put(self, key: str, data: bytes, *, content_type: str | None = None, overwrite: bool = False) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, CacheControl=cache_control(key),
                ContentType=content_type or mimetypes.guess_type(key)[0] or "application/octet-stream", **extra,
            )
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412:
                return False  # already there: keys are content-addressed, so it is the same object
            raise self._failed("put of", self.location(key), exc) from exc
        except BotoCoreError as exc:
            raise self._failed("put of", self.location(key), exc) from exc
        return True

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise FileNotFoundError(self.location(key)) from None
            raise self._failed("get of", self.location(key), exc) from exc
        except BotoCoreError as exc:
            raise self._failed("get of", self.location(key), exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return False
            raise self._failed("head of", self.location(key), exc) from exc
        except BotoCoreError as exc:
            raise self._failed("head of", self.location(key), exc) from exc
        return True

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))  # absent keys are not an error
        except (BotoCoreError, ClientError) as exc:
            raise self._failed("delete of", self.location(key), exc) from exc

    def list(self, prefix: str) -> list[str]:
        """Keys under the folder ``prefix`` ("" for all), relative to the store root, sorted."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self.prefix + (check_key(prefix.strip("/")) + "/" if prefix.strip("/") else "")
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        try:
            return sorted(obj["Key"][len(self.prefix):] for page in pages for obj in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._failed("list of", f"s3://{self.bucket}/{full}", exc) from exc

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
