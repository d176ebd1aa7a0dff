"""The byte backend on S3 or any S3-compatible server, through boto3 (imported here only).

Parallel transfers, bounded retries with backoff, and every failure mapped to one line.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import tempfile
import threading
import time

from mflow.errors import StoreError
from mflow.namedtuple import NamedTuple
from mflow.runtime.executors import positive_float  # shared with the executors, which read it without S3

from .backend import ByteBackend, ObjectInfo, ObjectNotFound, Upload

DEFAULT_WORKERS = 16
DEFAULT_ATTEMPTS = 4  # botocore's "standard" mode: exponential backoff with jitter, < 8 s in all
DEFAULT_CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 60.0
# Objects up to this size go in one PUT; larger ones as parallel multipart uploads of
# parts of PART_SIZE, read from a spooled file so that memory stays flat.
SINGLE_PUT_SIZE = 16 << 20
PART_SIZE = 8 << 20
SPOOL_SIZE = 8 << 20

NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"}
BAD_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class S3Settings(NamedTuple):
    """How mflow reaches S3, from MFLOW_S3_ENDPOINT_URL, MFLOW_S3_WORKERS, MFLOW_S3_RETRIES
    and MFLOW_S3_CONNECT_TIMEOUT; shared by the store and by mflow.s3 (`from mflow import S3`)."""

    endpoint: Optional[str]
    workers: int
    attempts: int
    connect_timeout: float

    @classmethod
    def from_environ(cls, environ):
        return cls(
            environ.get("MFLOW_S3_ENDPOINT_URL") or None,
            _positive_int(environ, "MFLOW_S3_WORKERS", DEFAULT_WORKERS),
            _positive_int(environ, "MFLOW_S3_RETRIES", DEFAULT_ATTEMPTS),
            positive_float(environ, "MFLOW_S3_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
        )


def aws_session(environ):
    """A boto3 session from the standard AWS settings in `environ` (keys, token, profile)."""
    import boto3.session

    return boto3.session.Session(
        aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
        profile_name=environ.get("AWS_PROFILE") or None,
    )


def configured_region(environ, session):
    """The AWS region `environ` or the session's profile names, or None."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or session.region_name


def make_client(settings, environ, region=None):
    """(boto3 session, S3 client) with mflow's timeouts, retries and connection pool, from the
    standard AWS settings in `environ`; `region` overrides the configured one. Raises boto3's
    own exceptions (a malformed endpoint URL, an unknown profile): callers name what failed."""
    from botocore.config import Config

    session = aws_session(environ)
    if region is None:
        region = configured_region(environ, session)
    if region is None and settings.endpoint:
        region = "us-east-1"  # S3-compatible servers accept any region; signing needs one
    config = Config(
        region_name=region,
        connect_timeout=settings.connect_timeout,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": settings.attempts},
        max_pool_connections=settings.workers + 4,
    )
    return session, session.client("s3", endpoint_url=settings.endpoint, config=config)


def parse_url(url):
    """(bucket, key prefix without trailing '/') of s3://bucket[/prefix]."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class S3Backend(ByteBackend):
    """Objects under s3://bucket/prefix; boto3's standard configuration supplies region and
    credentials, MFLOW_S3_ENDPOINT_URL any S3-compatible server."""

    remote = True

    def __init__(self, url, environ=None):
        environ = os.environ if environ is None else environ
        self.bucket, self.prefix = parse_url(url)
        self.url = "s3://%s%s" % (self.bucket, "/" + self.prefix if self.prefix else "")
        if not self.bucket:
            raise StoreError("%r names no bucket" % url, "Write the store as s3://BUCKET/PREFIX", store=url)
        self.settings = S3Settings.from_environ(environ)
        self.endpoint, self.workers, self.attempts, self.connect_timeout = self.settings
        self._environ = environ
        self._client = None
        self._executor = None
        self._lock = threading.Lock()
        self._bucket_checked = False

    def describe(self):
        where = self.endpoint or "AWS"
        return "S3 bucket %s%s at %s" % (self.bucket, " prefix " + self.prefix if self.prefix else "", where)

    # --- the client ---------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self):
        try:
            return make_client(self.settings, self._environ)[1]
        except Exception as exc:  # a malformed endpoint URL, an unknown profile
            raise StoreError(
                "cannot set up S3 for store %s: %s" % (self.url, exc),
                "Check MFLOW_S3_ENDPOINT_URL and your AWS configuration",
                store=self.url,
            ) from exc

    def _pool(self):
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        self.workers, thread_name_prefix="mflow-s3"
                    )
        return self._executor

    def _key(self, path):
        return "%s/%s" % (self.prefix, path) if self.prefix else path

    def _path(self, key):
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _call(self, action, path, function, **kwargs):
        """Run one boto3 call, turning every failure into a one-line StoreError."""
        from botocore import exceptions as bx

        try:
            return function(**kwargs)
        except bx.ClientError as exc:
            raise self._client_error(exc, action, path) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError) as exc:
            raise StoreError(
                "no usable AWS credentials for store %s (%s)" % (self.url, exc),
                "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
                store=self.url,
            ) from exc
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
            raise StoreError(
                "cannot reach %s for store %s after %d attempts" % (self.endpoint or "S3", self.url, self.attempts),
                "Check MFLOW_S3_ENDPOINT_URL and that the server is up",
                store=self.url,
            ) from exc
        except (bx.ReadTimeoutError, bx.ConnectionClosedError, bx.HTTPClientError) as exc:
            raise StoreError(
                "connection to %s lost while trying to %s %s in store %s (%s)"
                % (self.endpoint or "S3", action, path, self.url, type(exc).__name__),
                "Retry; raise MFLOW_S3_RETRIES if the network is flaky",
                store=self.url,
            ) from exc
        except bx.BotoCoreError as exc:
            raise StoreError(
                "cannot %s %s in store %s: %s" % (action, path, self.url, exc),
                "Check the store URL and your AWS configuration",
                store=self.url,
            ) from exc

    def _client_error(self, exc, action, path):
        mapped = self._map_client_error(exc, action, path)
        mapped.s3_code = str(exc.response.get("Error", {}).get("Code", ""))
        return mapped

    def _map_client_error(self, exc, action, path):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return self._no_bucket()
        if code in NOT_FOUND_CODES:
            return ObjectNotFound(self.url, path)
        if code in BAD_CREDENTIAL_CODES:
            return StoreError(
                "%s rejected the AWS credentials for store %s (%s)" % (self.endpoint or "S3", self.url, code),
                "Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_PROFILE",
                store=self.url,
            )
        if code in DENIED_CODES or status == 403:
            return StoreError(
                "permission denied: cannot %s %s in store %s (%s)" % (action, path, self.url, code or status),
                "Ask for access to the bucket, or use another store",
                store=self.url,
            )
        message = error.get("Message") or code
        return StoreError(
            "cannot %s %s in store %s: %s (%s)" % (action, path, self.url, message, code or status),
            "Retry, or check the server's logs",
            store=self.url,
        )

    def _no_bucket(self):
        return StoreError(
            "bucket %s of store %s does not exist%s"
            % (self.bucket, self.url, " at " + self.endpoint if self.endpoint else ""),
            "Create it, or point --store or MFLOW_STORE at another bucket",
            store=self.url,
        )

    def _check_bucket(self):
        """After a 404 on HEAD (which carries no error code), tell a missing bucket from a key."""
        if self._bucket_checked:
            return
        from botocore import exceptions as bx

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except bx.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise self._no_bucket() from exc
            raise self._client_error(exc, "read", "the bucket") from exc
        self._bucket_checked = True

    # --- writes -------------------------------------------------------------------------

    def put(self, path, data):
        self._call("write", path, self.client.put_object, Bucket=self.bucket, Key=self._key(path), Body=bytes(data))

    def put_many(self, items):
        items = list(items)
        if len(items) <= 1:
            for path, data in items:
                self.put(path, data)
            return
        for _ in self._pool().map(lambda item: self.put(*item), items):
            pass

    def put_if_absent(self, path, data):
        from botocore import exceptions as bx

        data = bytes(data)

        def create():
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, IfNoneMatch="*")
                return True
            except bx.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code not in _EXISTS and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 412:
                    raise
            # The name is taken. If a retry of our own PUT found our first attempt already
            # done (its response lost), the object holds exactly our bytes: that is success.
            try:
                return self.get(path) == data
            except ObjectNotFound:
                return False

        return self._call("create", path, create)

    def begin_upload(self):
        return _S3Upload(self)

    def _upload_file(self, path, filename, size):
        if size <= SINGLE_PUT_SIZE:
            with open(filename, "rb") as stream:
                self.put(path, stream.read())
            return
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=SINGLE_PUT_SIZE,
            multipart_chunksize=PART_SIZE,
            max_concurrency=self.workers,
        )
        self._transfer(
            "write",
            path,
            self.client.upload_file,
            Filename=filename,
            Bucket=self.bucket,
            Key=self._key(path),
            Config=config,
        )

    def _transfer(self, action, path, function, **kwargs):
        # s3transfer wraps some failures in its own exception types; unwrap them first.
        try:
            return self._call(action, path, function, **kwargs)
        except (StoreError, ObjectNotFound):
            raise
        except Exception as exc:
            cause = exc.__cause__ or exc.__context__
            from botocore import exceptions as bx

            if isinstance(cause, bx.ClientError):
                raise self._client_error(cause, action, path) from exc
            if type(exc).__module__.startswith(("s3transfer", "boto3")):
                raise StoreError(
                    "cannot %s %s in store %s: %s" % (action, path, self.url, exc),
                    "Retry, or check the server's logs",
                    store=self.url,
                ) from exc
            raise

    def touch(self, path):
        key = self._key(path)
        try:
            self._call(
                "touch",
                path,
                self.client.copy_object,
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={"mflow-touched": "%d" % time.time()},
            )
            return True
        except ObjectNotFound:
            return False
        except StoreError as exc:
            # A copy larger than 5 GB needs a multipart copy; let the caller upload instead.
            if getattr(exc, "s3_code", None) in ("InvalidRequest", "EntityTooLarge"):
                return False
            raise

    def delete(self, path):
        self._call("delete", path, self.client.delete_object, Bucket=self.bucket, Key=self._key(path))

    def delete_many(self, paths):
        paths = list(paths)
        for start in range(0, len(paths), 1000):
            batch = paths[start : start + 1000]
            response = self._call(
                "delete",
                batch[0],
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(p)} for p in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    "cannot delete %d objects in store %s, e.g. %s: %s"
                    % (len(errors), self.url, self._path(first.get("Key", "")), first.get("Message") or first.get("Code")),
                    "Check your permissions on the bucket",
                    store=self.url,
                )

    # --- reads --------------------------------------------------------------------------

    def get(self, path):
        response = self._call("read", path, self.client.get_object, Bucket=self.bucket, Key=self._key(path))
        try:
            return response["Body"].read()
        except Exception as exc:
            raise self._lost(exc, path) from exc

    def get_many(self, paths):
        def fetch(path):
            try:
                return path, self.get(path)
            except ObjectNotFound:
                return path, None

        return self._pool().map(fetch, list(paths))

    def _lost(self, exc, path):
        return StoreError(
            "connection to %s lost while reading %s in store %s (%s)" % (self.endpoint or "S3", path, self.url, exc),
            "Retry; raise MFLOW_S3_RETRIES if the network is flaky",
            store=self.url,
        )

    def open(self, path, start=0, length=None):
        kwargs = {"Bucket": self.bucket, "Key": self._key(path)}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            if length == 0:
                return io.BytesIO(b"")
            kwargs["Range"] = "bytes=%d-%s" % (start, end)
        response = self._call("read", path, self.client.get_object, **kwargs)
        return response["Body"]

    def open_local(self, path):
        from boto3.s3.transfer import TransferConfig

        # An anonymous temporary file: it vanishes when closed, or when the process dies.
        handle = tempfile.TemporaryFile(prefix="mflow-")
        config = TransferConfig(
            multipart_threshold=SINGLE_PUT_SIZE,
            multipart_chunksize=PART_SIZE,
            max_concurrency=self.workers,
        )
        try:
            self._transfer(
                "read",
                path,
                self.client.download_fileobj,
                Bucket=self.bucket,
                Key=self._key(path),
                Fileobj=handle,
                Config=config,
            )
        except ObjectNotFound:
            handle.close()
            self._check_bucket()
            raise
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        return handle

    def stat(self, path):
        try:
            response = self._call("read", path, self.client.head_object, Bucket=self.bucket, Key=self._key(path))
        except ObjectNotFound:
            self._check_bucket()
            return None
        except StoreError as exc:
            if getattr(exc, "s3_code", None) == "403":
                # A HEAD response has no body, so no error code: ask again with a GET of one
                # byte to tell rejected credentials from a denied permission.
                self._call("read", path, self.client.get_object, Bucket=self.bucket, Key=self._key(path), Range="bytes=0-0")
            raise
        return ObjectInfo(path, response["ContentLength"], response["LastModified"].timestamp())

    def list(self, prefix=""):
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) if prefix else self._key(""))
        iterator = iter(pages)
        while True:
            page = self._call("list", prefix or "/", lambda: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", ()):
                yield ObjectInfo(self._path(item["Key"]), item["Size"], item["LastModified"].timestamp())

    def list_children(self, prefix):
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix), Delimiter="/")
        iterator = iter(pages)
        names = []
        cut = len(self._key(prefix))
        while True:
            page = self._call("list", prefix or "/", lambda: next(iterator, None))
            if page is None:
                return names
            for item in page.get("CommonPrefixes", ()):
                names.append(item["Prefix"][cut:])
            for item in page.get("Contents", ()):
                names.append(item["Key"][cut:])

    # --- housekeeping -------------------------------------------------------------------

    def stale_uploads(self, older_than):
        stale = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        iterator = iter(paginator.paginate(Bucket=self.bucket, Prefix=self._key("")))
        while True:
            page = self._call("list", "multipart uploads", lambda: next(iterator, None))
            if page is None:
                return stale
            for upload in page.get("Uploads", ()):
                started = upload["Initiated"].timestamp()
                if started < older_than:
                    info = ObjectInfo(self._path(upload["Key"]), 0, started)
                    stale.append(_StaleUpload(info, upload["UploadId"]))

    def remove_stale_upload(self, info):
        self._call(
            "abort an upload of",
            info.path,
            self.client.abort_multipart_upload,
            Bucket=self.bucket,
            Key=self._key(info.path),
            UploadId=info.upload_id,
        )

    def close(self):
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class _StaleUpload(ObjectInfo):
    """An incomplete multipart upload; an ObjectInfo that also carries its upload id."""

    def __new__(cls, info, upload_id):
        self = super().__new__(cls, *info)
        self.upload_id = upload_id
        return self


class _S3Upload(Upload):
    """Bytes kept in memory while small, then spooled to a temporary file; sent on commit.

    A writer killed before commit leaves nothing in the bucket: the object appears only
    when its single PUT or its multipart upload completes.
    """

    def __init__(self, backend):
        self._backend = backend
        self._memory = bytearray()
        self._spool = None
        self.size = 0
        self._done = False

    def write(self, data):
        view = memoryview(data)
        if self._spool is None and len(self._memory) + view.nbytes <= SPOOL_SIZE:
            self._memory += view
        else:
            if self._spool is None:
                self._spool = tempfile.NamedTemporaryFile(prefix="mflow-upload-", delete=False)
                self._spool.write(self._memory)
                self._memory = None
            try:
                self._spool.write(view)
            except OSError as exc:
                self.abort()
                raise StoreError(
                    "cannot spool an upload for store %s to %s: %s"
                    % (self._backend.url, tempfile.gettempdir(), exc.strerror),
                    "Free space there or point TMPDIR elsewhere",
                    store=self._backend.url,
                ) from exc
        self.size += view.nbytes

    def commit(self, path, exclusive=False):
        if self._done:
            raise ValueError("upload already finished")
        try:
            if self._spool is None:
                data = bytes(self._memory)
                if exclusive:
                    return self._backend.put_if_absent(path, data)
                self._backend.put(path, data)
                return True
            if exclusive:
                raise ValueError("exclusive commits are for small records only")
            self._spool.close()
            self._backend._upload_file(path, self._spool.name, self.size)
            return True
        finally:
            self.abort()

    def abort(self):
        if self._done:
            return
        self._done = True
        self._memory = None
        if self._spool is not None:
            self._spool.close()
            try:
                os.unlink(self._spool.name)
            except OSError:
                pass


def _positive_int(environ, name, default):
    return int(positive_float(environ, name, default))
