"""The requests behind mflow.S3: signed HTTP/1.1 straight to the endpoint from one event-loop
thread, many at once, large objects in ranges, transient failures retried with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import os
import random
import re
import ssl
import threading
import time
from urllib.parse import quote, urlsplit

from mflow.errors import S3AccessDeniedError, S3Error, S3LocalFileError, S3NotFoundError, S3URLError
from mflow.namedtuple import NamedTuple
from mflow.store.s3 import (
    BAD_CREDENTIAL_CODES,
    DENIED_CODES,
    NOT_FOUND_CODES,
    READ_TIMEOUT,
    SINGLE_PUT_SIZE,
    S3Settings,
    make_client,
)

# A GET asks for at most this much; the rest of a larger object follows in ranges of this
# size on other connections. One request still fetches any object up to this size.
PART_SIZE = 16 << 20
CHUNK = 1 << 20  # bytes read or sent at a time; also each connection's buffer limit
# Waits between attempts: random, up to BACKOFF_BASE * 2^(attempt - 1) seconds and at most
# MAX_BACKOFF, as in botocore's standard retry mode.
BACKOFF_BASE = 1.0
MAX_BACKOFF = 20.0

_RETRY_STATUS = {429, 500, 502, 503, 504}
_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
_RETRY_CODES = _THROTTLE_CODES | {"RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable"}
_REDIRECT_CODES = {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_REGION = re.compile(rb"<Region>([^<]*)</Region>")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
# How a keep-alive connection the server already closed shows itself on first use.
_STALE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, asyncio.IncompleteReadError)


class ObjectHead(NamedTuple):
    """What S3 says about an object in the headers of a GET or HEAD."""

    size: int  # the whole object's size, also for a ranged GET
    content_type: Optional[str]
    metadata: dict  # the user metadata: x-amz-meta-NAME headers, by NAME
    last_modified: Optional[int]  # epoch seconds
    etag: Optional[str]
    encryption: Optional[str]

    @classmethod
    def from_headers(cls, headers, size):
        prefix = "x-amz-meta-"
        metadata = {name[len(prefix) :]: value for name, value in headers.items() if name.startswith(prefix)}
        return cls(
            size,
            headers.get("content-type"),
            metadata,
            _http_time(headers.get("last-modified")),
            headers.get("etag"),
            headers.get("x-amz-server-side-encryption"),
        )


class Download(NamedTuple):
    """A finished download of bytes [start, end) of an object: in `data` when the request's
    memory allowance let it keep them, else in the request's local file."""

    head: ObjectHead
    start: int
    end: int
    data: Optional[bytes] = None


class Listed(NamedTuple):
    """One listing entry: an object (size, last_modified) or, with a delimiter, a common prefix (size None)."""

    key: str
    size: Optional[int]
    last_modified: Optional[int]


class GetRequest(NamedTuple):
    """Fetch an object, or bytes [start, end) of it, or its last `suffix` bytes, into `path`;
    or into memory, when the body comes in one answer and `memory` (an allowance with
    take(size) and give_back(size), shared by a batch) lets it be kept there."""

    bucket: str
    key: str
    url: str
    path: str
    start: Optional[int] = None
    end: Optional[int] = None
    suffix: Optional[int] = None
    memory: object = None


class HeadRequest(NamedTuple):
    bucket: str
    key: str
    url: str


class ListRequest(NamedTuple):
    """List under `prefix`; with a delimiter, the next level only."""

    bucket: str
    prefix: str
    delimiter: str
    url: str


class PutRequest(NamedTuple):
    """Upload `value` (bytes-like or a binary file at its start) or the local `file`."""

    bucket: str
    key: str
    url: str
    value: object
    file: Optional[str]
    size: int
    headers: dict


class Target(NamedTuple):
    """Where requests for one bucket go and how they are signed."""

    scheme: str
    host: str
    port: int
    netloc: str  # the Host header
    path_prefix: str  # "/bucket" for path-style addressing, "" for virtual-hosted
    region: str


class _Failure(Exception):
    """A request's failure as S3 (or the network) reported it, before it is named for people."""

    def __init__(self, status=None, code="", message="", headers=None, cause=None, region=None, connecting=False):
        super().__init__(code or status or cause)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.cause = cause
        self.region = region  # where S3 says the bucket is, when it is not where we asked
        self.connecting = connecting  # the connection itself failed: nothing reached the server
        self.attempts = None

    @property
    def transient(self):
        if self.cause is not None:
            return not isinstance(self.cause, ssl.SSLCertVerificationError)
        return self.status in _RETRY_STATUS or self.code in _RETRY_CODES


class _Truncated(Exception):
    """The connection ended before the body's announced length, or the server stopped talking."""


class Transport:
    """Object GETs, HEADs and PUTs many at once, listings and multipart uploads, for one S3 client.

    boto3 (through mflow.store.s3) decides *where* and *as whom*: credentials, region,
    endpoint URL and addressing style; it also lists and makes multipart uploads. Only each
    object's GET, HEAD and PUT bypass it, because boto3's overhead per request (about 2 ms of
    CPU) is what limits a transfer of many small objects. Those requests are made by one
    asyncio event loop on a thread of its own, `workers` at a time: one thread, not a pool,
    because threads spend more CPU handing the GIL to each other than on the requests, and
    a thread of its own so that S3 also works where a loop already runs (a notebook). Where
    the shortcut cannot be trusted (a proxy, an endpoint whose URLs do not look like S3's),
    every request goes through boto3 on a pool of threads instead.

    Batch methods take lists and return results in the same order; the first failure stops
    the batch and is raised as one of mflow's S3 errors, whose message names the object.
    """

    def __init__(self, environ):
        self._environ = environ
        self.settings = S3Settings.from_environ(environ)
        self.workers = self.settings.workers
        self.attempts = self.settings.attempts
        self._lock = threading.Lock()
        self._client = None
        self._session = None
        self._clients = {}  # region -> boto3 client, for buckets outside the configured region
        self._targets = {}  # bucket -> Target, or None where only boto3 will do
        self._missing_buckets = {}  # bucket -> True/False, once asked after a 404 without a code
        self._keys = {}
        self._context = None
        self._reset()

    def _reset(self):
        self._pid = os.getpid()
        self._loop = None
        self._thread = None
        self._idle = collections.defaultdict(list)  # netloc -> idle connections (loop thread only)
        self._executor = None

    # --- boto3: credentials, region, endpoint, listings, multipart uploads --------------

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._session, self._client = self._make_client()
        return self._client

    def _make_client(self, region=None):
        try:
            return make_client(self.settings, self._environ, region)
        except Exception as exc:  # a malformed endpoint URL, an unknown profile
            raise S3Error(
                "cannot set up S3: %s" % exc, "Check MFLOW_S3_ENDPOINT_URL and your AWS configuration"
            ) from exc

    def _client_for(self, region):
        if region == self.client.meta.region_name:
            return self.client
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._make_client(region)[1]
            return self._clients[region]

    @property
    def endpoint(self):
        return self.settings.endpoint or "S3"

    def target(self, bucket):
        """The Target of `bucket`, or None when requests must go through boto3."""
        if bucket not in self._targets:
            from botocore.exceptions import ParamValidationError

            try:
                self._targets[bucket] = self._resolve_target(bucket, self.client)
            except ParamValidationError as exc:
                raise S3URLError(
                    "%r is not a valid bucket name (%s)" % (bucket, exc), "Check the s3:// URL", bucket
                ) from None
        return self._targets[bucket]

    def _resolve_target(self, bucket, client):
        # boto3 knows the endpoint, addressing style and region rules; ask it for the URL of
        # a dummy object in the bucket and reuse its shape for every key.
        url = client.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        parts = urlsplit(url)
        if parts.path == "/%s/k" % quote(bucket, safe=""):
            prefix = "/" + quote(bucket, safe="")
        elif parts.path == "/k":
            prefix = ""
        else:
            return None
        if parts.scheme not in ("http", "https") or client.meta.config.proxies:
            return None
        if _proxied(parts.scheme, parts.hostname):
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Target(parts.scheme, parts.hostname, port, parts.netloc, prefix, client.meta.region_name)

    def _credentials(self, url):
        self.client  # noqa: B018  (builds the session)
        try:
            credentials = self._session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except Exception as exc:  # a failing credential process, an unreachable SSO
            raise S3Error("cannot get AWS credentials to reach %s: %s" % (url, exc), _CREDENTIALS_HINT, url) from exc
        if frozen is None or not frozen.access_key:
            raise S3Error("no AWS credentials to reach %s" % url, _CREDENTIALS_HINT, url)
        return frozen

    def _ssl_context(self):
        if self._context is None:
            from botocore.httpsession import get_cert_path

            self.client  # noqa: B018  (builds the session)
            # AWS_CA_BUNDLE or ca_bundle in the AWS config, as boto3 would use; else its default.
            core = getattr(self._session, "_session", None)
            bundle = (core.get_config_variable("ca_bundle") if core else None) or get_cert_path(True)
            self._context = ssl.create_default_context(cafile=bundle if isinstance(bundle, str) else None)
        return self._context

    # --- batches --------------------------------------------------------------------------------

    def get_many(self, requests, return_missing=False):
        """Download each GetRequest; a Download each, or None for a missing key with return_missing."""
        return self._batch(requests, self._get_job, self._boto_get, return_missing)

    def head_many(self, requests, return_missing=False):
        """ObjectHead of each HeadRequest; None for a missing key with return_missing."""
        return self._batch(requests, self._head_job, self._boto_head, return_missing)

    def put_many(self, requests, overwrite=True):
        """Upload each PutRequest; for each, False when overwrite is False and the key existed.

        Objects up to SINGLE_PUT_SIZE go one request each, many at once; larger ones after,
        one at a time, each as a multipart upload of parallel parts (so memory stays bounded).
        """
        requests = list(requests)
        small = [i for i, r in enumerate(requests) if r.size <= SINGLE_PUT_SIZE]
        results = [None] * len(requests)
        sent = self._batch([requests[i] for i in small], self._put_job, self._boto_put, overwrite)
        for index, result in zip(small, sent):
            results[index] = result
        for index, request in enumerate(requests):
            if request.size > SINGLE_PUT_SIZE:
                results[index] = self._with_body(request, lambda body: self._boto_upload(request, body, overwrite))
        return results

    def list_many(self, requests):
        """Listed entries of each ListRequest, in key order."""
        return self._threaded(lambda request: self._list(*request), requests)

    def _batch(self, requests, job, fallback, option):
        """Run job(request, option, results, index) on the event loop for requests whose bucket
        allows direct requests, fallback(request, option) on threads for the others."""
        requests = list(requests)
        results = [None] * len(requests)
        direct, other = [], []
        for index, request in enumerate(requests):
            (direct if self.target(request.bucket) is not None else other).append(index)
        if direct:
            self._run(self._lanes([job(requests[i], option, results, i) for i in direct]))
        if other:
            done = self._threaded(lambda request: fallback(request, option), [requests[i] for i in other])
            for index, result in zip(other, done):
                results[index] = result
        return results

    # --- the event loop ---------------------------------------------------------------------------

    def _check_fork(self):
        if self._pid != os.getpid():
            self._reset()  # a forked child: the parent's threads and sockets are not ours

    def _run(self, coroutine):
        """Run a coroutine on the loop thread (started on first use) and wait for it."""
        self._check_fork()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="mflow-s3", daemon=True)
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C while waiting: stop the batch; its connections are dropped
            raise

    async def _lanes(self, jobs):
        """Run jobs (async callables; each may return more jobs) `workers` at a time. The first
        failure cancels the rest and is raised."""
        queue = collections.deque(jobs)
        state = {"busy": 0}
        changed = asyncio.Event()

        async def lane():
            while True:
                if queue:
                    job = queue.popleft()
                    state["busy"] += 1
                    try:
                        more = await job()
                    finally:
                        state["busy"] -= 1
                        changed.set()
                    if more:
                        queue.extendleft(reversed(more))  # a large object's ranges first
                elif state["busy"]:
                    changed.clear()
                    await changed.wait()
                else:
                    return

        lanes = [asyncio.ensure_future(lane()) for _ in range(min(self.workers, len(queue)))]
        try:
            await asyncio.gather(*lanes)
        except BaseException:
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            raise

    def _threaded(self, function, items):
        """function(item) for each item on a pool of threads, results in order; the first
        failure (in that order) is raised and the calls not yet started are dropped."""
        items = list(items)
        if len(items) <= 1:
            return [function(item) for item in items]
        self._check_fork()
        if self._executor is None:
            import concurrent.futures

            self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="mflow-s3")
        futures = [self._executor.submit(function, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    # --- connections -------------------------------------------------------------------------------

    async def _connection(self, target):
        """An idle keep-alive connection to the target (reused: True), or a new one."""
        idle = self._idle[target.netloc]
        while idle:
            connection = idle.pop()
            if not connection.writer.is_closing():
                return connection, True
        context = self._ssl_context() if target.scheme == "https" else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                target.host, target.port, ssl=context, server_hostname=target.host if context else None, limit=CHUNK
            ),
            self.settings.connect_timeout,
        )
        return _Connection(reader, writer), False

    def _release(self, target, connection):
        connection.disarm()
        if connection.reusable and not connection.writer.is_closing():
            self._idle[target.netloc].append(connection)
        else:
            connection.close()

    # --- one request, retried ------------------------------------------------------------------------

    def _path(self, target, key):
        return "%s/%s" % (target.path_prefix, quote(key, safe="/~"))

    def _signed_headers(self, target, method, path, headers, url):
        credentials = self._credentials(url)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = dict(headers)
        headers["host"] = target.netloc
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        key = self._signing_key(credentials.secret_key, stamp[:8], target.region)
        headers["authorization"] = sign_v4(method, path, "", headers, credentials.access_key, key, stamp, target.region)
        return headers

    def _signing_key(self, secret, date, region):
        cache_key = (secret, date, region)
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = signing_key(secret, date, region)
        return key

    async def _request(self, bucket, key, method, headers, consume, body=None, url=None):
        """Send one request and return await consume(connection, status, headers) for a 2xx
        answer (consume reads the body); otherwise raise _Failure once the attempts are used
        up, or at once for a permanent failure."""
        url = url or "s3://%s/%s" % (bucket, key)
        attempt = 0
        stale_retry = True
        redirected = False
        body_start = body.tell() if hasattr(body, "seek") else None
        while True:
            if body_start is not None:
                body.seek(body_start)
            target = self.target(bucket)
            path = self._path(target, key)
            connection, reused, connecting = None, False, True
            try:
                connection, reused = await self._connection(target)
                connecting = False
                status, response = await connection.exchange(
                    method, path, self._signed_headers(target, method, path, headers, url), body
                )
                if 200 <= status < 300:
                    result = await consume(connection, status, response)
                    self._release(target, connection)
                    return result
                failure = await _failure_of(connection, method, status, response)
                self._release(target, connection)
            except (_Truncated, OSError, EOFError, ValueError, asyncio.TimeoutError, asyncio.LimitOverrunError) as exc:
                # EOFError covers IncompleteReadError; ValueError a malformed answer.
                if connection is not None:
                    connection.close()
                if reused and stale_retry and isinstance(exc, _STALE) and not connection.answered:
                    # The server had closed this idle keep-alive connection: not a real attempt.
                    stale_retry = False
                    continue
                if connection is not None and connection.timed_out:
                    exc = TimeoutError("no progress for %d s" % READ_TIMEOUT)
                failure = _Failure(cause=exc, connecting=connecting)
            except BaseException:
                if connection is not None:
                    connection.close()  # cancelled, or the local file failed: mid-exchange
                raise
            if failure.region and failure.region != target.region and not redirected:
                # The bucket lives in another region than the one configured: as boto3 does,
                # sign for that region and ask again.
                redirected = True
                self._targets[bucket] = self._resolve_target(bucket, self._client_for(failure.region))
                if self._targets[bucket] is None:
                    raise _Failure(failure.status, "WrongRegion", "the bucket is in region %s" % failure.region)
                continue
            attempt += 1
            failure.attempts = attempt
            if not failure.transient or attempt >= self.attempts:
                raise failure
            await asyncio.sleep(random.uniform(0, min(MAX_BACKOFF, BACKOFF_BASE * 2 ** (attempt - 1))))

    async def _failed(self, failure, method, url, bucket):
        """The mflow error for a failed direct request (asking about the bucket if need be)."""
        if failure.status == 404 and not failure.code and bucket not in self._missing_buckets:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._bucket_missing, bucket)
        return self._error(failure, method, url, bucket)

    # --- GET ---------------------------------------------------------------------------------------

    def _get_job(self, request, return_missing, results, index):
        async def job():
            try:
                try:
                    results[index], more = await self._get_first(request)
                except _Failure as failure:
                    raise await self._failed(failure, "GET", request.url, request.bucket) from None
            except S3NotFoundError as error:
                if return_missing and not error.missing_bucket:
                    return ()
                raise
            return more

        return job

    async def _get_first(self, request):
        """The first GET of a download. (Download, more): `more` are jobs fetching the remaining
        ranges of a large object, to run (in parallel) before the file is complete."""
        bucket, key, url, path, start, end, suffix, memory = request
        if suffix is None and end is not None and end <= (start or 0):
            head = await self._head(bucket, key, url)
            if memory is not None and memory.take(0):
                return Download(head, start or 0, start or 0, b""), ()
            _write_empty(path, url)
            return Download(head, start or 0, start or 0), ()
        if suffix is not None:
            first = "bytes=-%d" % min(suffix, PART_SIZE)
        else:
            first_end = (start or 0) + PART_SIZE if end is None else min(end, (start or 0) + PART_SIZE)
            first = "bytes=%d-%d" % (start or 0, first_end - 1)

        def wanted(total):
            """The bytes [start, end) of an object of `total` bytes that the request asks for."""
            if suffix is not None:
                return max(0, total - suffix), total
            return start or 0, total if end is None else min(end, total)

        async def consume(connection, status, headers):
            have_start, have_end, total = _span(status, headers)
            want_start, want_end = wanted(total)
            head = ObjectHead.from_headers(headers, total)
            if have_start < want_start:
                raise S3Error(
                    "%s answered a ranged GET of %s with other bytes" % (self.endpoint, url),
                    "Use a server that supports Range",
                    url,
                )
            size = have_end - have_start
            if memory is not None and (have_start, have_end) == (want_start, want_end) and memory.take(size):
                # All of it in this one answer, and small: no file (creating one costs more
                # CPU than receiving a small object; the client writes it if asked for).
                try:
                    data = await connection.receive_memory(headers)
                    if len(data) != size:
                        raise _Truncated("%d of %d bytes arrived" % (len(data), size))
                except BaseException:
                    memory.give_back(size)
                    raise
                return (have_start, have_end), head, data
            await connection.receive_file(headers, path, have_start - want_start, create=True, url=url)
            return (have_start, have_end), head, None

        try:
            (have_start, have_end), head, data = await self._request(
                bucket, key, "GET", {"range": first}, consume, url=url
            )
        except _Failure as failure:
            if failure.status != 416 or start or end is not None or suffix is not None:
                raise
            # A Range on an empty object is "invalid": ask for the whole (empty) object.
            (have_start, have_end), head, data = await self._request(bucket, key, "GET", {}, consume, url=url)
        want_start, want_end = wanted(head.size)
        if (have_start, have_end) == (want_start, want_end):
            return Download(head, want_start, want_end, data), ()
        # The object is larger than one request: size the file and fetch the rest in ranges,
        # each only from this very version of the object (If-Match its ETag).
        _reserve(path, want_end - want_start, url)
        gaps = [(want_start, max(want_start, have_start)), (min(have_end, want_end), want_end)]
        more = [
            self._part_job(bucket, key, url, path, head.etag, offset, min(offset + PART_SIZE, stop), want_start)
            for gap_start, stop in gaps
            for offset in range(gap_start, stop, PART_SIZE)
        ]
        return Download(head, want_start, want_end), more

    def _part_job(self, bucket, key, url, path, etag, start, stop, file_start):
        headers = {"range": "bytes=%d-%d" % (start, stop - 1)}
        if etag:
            headers["if-match"] = etag

        async def consume(connection, status, response):
            have_start, have_end, _ = _span(status, response)
            if (have_start, have_end) != (start, stop):
                raise _Truncated("asked for bytes %d-%d, got %d-%d" % (start, stop, have_start, have_end))
            await connection.receive_file(response, path, start - file_start, create=False, url=url)

        async def job():
            try:
                await self._request(bucket, key, "GET", headers, consume, url=url)
            except _Failure as failure:
                if failure.status == 412:
                    raise S3Error("%s changed while it was being downloaded" % url, "Download it again", url) from None
                raise await self._failed(failure, "GET", url, bucket) from None

        return job

    # --- HEAD ---------------------------------------------------------------------------------------

    def _head_job(self, request, return_missing, results, index):
        async def job():
            try:
                results[index] = await self._head(*request)
            except S3NotFoundError as error:
                if not return_missing or error.missing_bucket:
                    raise

        return job

    async def _head(self, bucket, key, url):
        async def consume(connection, status, headers):
            return ObjectHead.from_headers(headers, int(headers.get("content-length") or 0))

        try:
            return await self._request(bucket, key, "HEAD", {}, consume, url=url)
        except _Failure as failure:
            if failure.status == 403:
                # A HEAD answer has no body, so no error code: a one-byte GET tells rejected
                # credentials from a denied permission.
                try:
                    await self._request(bucket, key, "GET", {"range": "bytes=0-0"}, _drain, url=url)
                except _Failure as detailed:
                    failure = detailed
            raise await self._failed(failure, "HEAD", url, bucket) from None

    # --- PUT -----------------------------------------------------------------------------------------

    def _put_job(self, request, overwrite, results, index):
        async def job():
            headers = dict(request.headers)
            headers["content-length"] = str(request.size)
            if not overwrite:
                headers["if-none-match"] = "*"
            body = request.value
            stream = None
            if request.file is not None:
                stream = _open_upload(request)
                body = stream
            try:
                await self._request(request.bucket, request.key, "PUT", headers, _drain, body, request.url)
                results[index] = True
            except _Failure as failure:
                if failure.status != 412 or overwrite:
                    raise await self._failed(failure, "PUT", request.url, request.bucket) from None
                results[index] = False
            finally:
                if stream is not None:
                    stream.close()

        return job

    # --- boto3, where direct requests cannot go -------------------------------------------------------

    def _boto_get(self, request, return_missing):
        bucket, key, url, path, start, end, suffix, memory = request
        kwargs = {"Bucket": bucket, "Key": key}
        if suffix is not None:
            kwargs["Range"] = "bytes=-%d" % suffix
        elif start or end is not None:
            kwargs["Range"] = "bytes=%d-%s" % (start or 0, "" if end is None else end - 1)
        try:
            response = self._boto("GET", url, bucket, self.client.get_object, **kwargs)
        except S3NotFoundError as error:
            if return_missing and not error.missing_bucket:
                return None
            raise
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        size, first = response["ContentLength"], 0
        match = _CONTENT_RANGE.match(headers.get("content-range", ""))
        if match:
            first, size = int(match.group(1)), int(match.group(3))
        head = ObjectHead.from_headers(headers, size)
        length = response["ContentLength"]
        if memory is not None and memory.take(length):
            try:
                data = response["Body"].read()
            except BaseException:
                memory.give_back(length)
                raise
            return Download(head, first, first + len(data), data)
        try:
            with open(path, "wb") as stream:
                for chunk in response["Body"].iter_chunks(CHUNK):
                    stream.write(chunk)
                written = stream.tell()
        except OSError as exc:
            raise local_write_error(exc, url, path) from exc
        return Download(head, first, first + written)

    def _boto_head(self, request, return_missing):
        bucket, key, url = request
        try:
            response = self._boto("HEAD", url, bucket, self.client.head_object, Bucket=bucket, Key=key)
        except S3NotFoundError as error:
            if return_missing and not error.missing_bucket:
                return None
            raise
        return ObjectHead.from_headers(response["ResponseMetadata"]["HTTPHeaders"], response["ContentLength"])

    def _boto_put(self, request, overwrite):
        return self._with_body(request, lambda body: self._boto_upload(request, body, overwrite))

    def _with_body(self, request, send):
        if request.file is None:
            return send(request.value)
        with _open_upload(request) as stream:
            return send(stream)

    def _boto_upload(self, request, body, overwrite):
        import io

        from boto3.s3.transfer import TransferConfig

        if not overwrite and self._boto_head(HeadRequest(request.bucket, request.key, request.url), True) is not None:
            return False
        headers = request.headers
        extra = {}
        if headers.get("content-type"):
            extra["ContentType"] = headers["content-type"]
        if headers.get("x-amz-server-side-encryption"):
            extra["ServerSideEncryption"] = headers["x-amz-server-side-encryption"]
        prefix = "x-amz-meta-"
        metadata = {name[len(prefix) :]: value for name, value in headers.items() if name.startswith(prefix)}
        if metadata:
            extra["Metadata"] = metadata
        if isinstance(body, (bytes, bytearray, memoryview)):
            body = io.BytesIO(body)
        config = TransferConfig(
            multipart_threshold=SINGLE_PUT_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=self.workers
        )
        self._boto(
            "PUT", request.url, request.bucket, self.client.upload_fileobj, body, request.bucket, request.key,
            ExtraArgs=extra or None, Config=config,
        )
        return True

    def _list(self, bucket, prefix, delimiter, url):
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter=delimiter))
        entries = []
        while True:
            page = self._boto("LIST", url, bucket, lambda: next(pages, None))
            if page is None:
                break
            for item in page.get("Contents", ()):
                entries.append(Listed(item["Key"], item["Size"], int(item["LastModified"].timestamp())))
            for item in page.get("CommonPrefixes", ()):
                entries.append(Listed(item["Prefix"], None, None))
        entries.sort()
        return entries

    def _boto(self, method, url, bucket, function, *args, **kwargs):
        """Call boto3, turning its failures into the same errors as a direct request's."""
        from botocore import exceptions as bx

        try:
            return function(*args, **kwargs)
        except bx.ClientError as exc:
            failure = self._client_failure(exc)
            if failure.status == 404 and not failure.code and bucket not in self._missing_buckets:
                self._bucket_missing(bucket)
            raise self._error(failure, method, url, bucket) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError) as exc:
            raise S3Error("no usable AWS credentials to reach %s (%s)" % (url, exc), _CREDENTIALS_HINT, url) from exc
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
            raise S3Error(
                "cannot reach %s for %s after %d attempts" % (self.endpoint, url, self.attempts), _ENDPOINT_HINT, url
            ) from exc
        except Exception as exc:
            # s3transfer wraps some failures in its own types; name the boto error inside.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, bx.ClientError):
                raise self._error(self._client_failure(cause), method, url, bucket) from exc
            if isinstance(exc, bx.BotoCoreError) or type(exc).__module__.startswith(("s3transfer", "boto3")):
                raise S3Error(
                    "cannot %s %s: %s" % (_action(method), url, exc), "Retry, or check the server's logs", url
                ) from exc
            raise

    def _client_failure(self, exc):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        failure = _Failure(
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            "" if code in ("404", "403") else code,  # a HEAD's "code" is only its status
            error.get("Message") or "",
        )
        failure.attempts = self.attempts
        return failure

    def _bucket_missing(self, bucket):
        """After a 404 without an error code (a HEAD has no body): is it the bucket that is
        missing? Asked once per bucket."""
        from botocore import exceptions as bx

        missing = False
        try:
            self.client.head_bucket(Bucket=bucket)
        except bx.ClientError as exc:
            missing = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
        except bx.BotoCoreError:
            pass
        self._missing_buckets[bucket] = missing
        return missing

    # --- errors ------------------------------------------------------------------------------------------

    def _error(self, failure, method, url, bucket):
        """The mflow error for a failed request on `url`."""
        action = _action(method)
        code, status = failure.code, failure.status
        attempts = failure.attempts or self.attempts
        if failure.cause is not None:
            cause = failure.cause
            if isinstance(cause, ssl.SSLCertVerificationError):
                return S3Error(
                    "cannot verify the TLS certificate of %s for %s: %s" % (self.endpoint, url, cause.verify_message),
                    "Set AWS_CA_BUNDLE to the certificate authority's bundle",
                    url,
                )
            if failure.connecting:
                return S3Error(
                    "cannot reach %s to %s %s after %d attempts (%s)"
                    % (self.endpoint, action, url, attempts, _describe(cause)),
                    _ENDPOINT_HINT,
                    url,
                )
            return S3Error(
                "connection to %s lost while trying to %s %s, %d attempts (%s)"
                % (self.endpoint, action, url, attempts, _describe(cause)),
                "Retry; raise MFLOW_S3_RETRIES if the network is flaky",
                url,
            )
        if code == "NoSuchBucket" or (status == 404 and not code and self._missing_buckets.get(bucket)):
            return S3NotFoundError(
                "bucket %s of %s does not exist%s"
                % (bucket, url, " at " + self.endpoint if self.settings.endpoint else ""),
                "Check the bucket's name, and MFLOW_S3_ENDPOINT_URL",
                url,
                missing_bucket=True,
            )
        if code in NOT_FOUND_CODES or status == 404:
            return S3NotFoundError("no object at %s" % url, "Check the key; S3.list_paths() shows what is there", url)
        if code in BAD_CREDENTIAL_CODES:
            return S3Error(
                "%s rejected the AWS credentials while trying to %s %s (%s)" % (self.endpoint, action, url, code),
                "Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_PROFILE",
                url,
            )
        if code in DENIED_CODES or status == 403:
            return S3AccessDeniedError(
                "access denied: cannot %s %s (%s)" % (action, url, code or status),
                "Ask for access to the bucket, or use other credentials",
                url,
            )
        if code in _THROTTLE_CODES or status in (429, 503):
            return S3Error(
                "%s kept throttling requests for %s (%s) after %d attempts"
                % (self.endpoint, url, code or status, attempts),
                "Retry later; lower MFLOW_S3_WORKERS or raise MFLOW_S3_RETRIES",
                url,
            )
        if status == 416:
            return S3Error(
                "the range asked of %s is outside the object (InvalidRange)" % url, "Check the offset and length", url
            )
        detail = failure.message or code or "HTTP %s" % status
        return S3Error(
            "cannot %s %s: %s (%s)" % (action, url, detail, code or status), "Retry, or check the server's logs", url
        )

    # --- lifetime ------------------------------------------------------------------------------------------

    def close(self):
        """Close the connections and stop the loop thread and the thread pool."""
        if self._loop is not None and self._pid == os.getpid() and threading.current_thread() is not self._thread:

            async def close_idle():
                for connections in self._idle.values():
                    for connection in connections:
                        connection.close()
                self._idle.clear()

            try:
                asyncio.run_coroutine_threadsafe(close_idle(), self._loop).result(10)
            except Exception:
                pass  # closing is best effort: the process may be going down
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._reset()


_CREDENTIALS_HINT = "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
_ENDPOINT_HINT = "Check MFLOW_S3_ENDPOINT_URL and that the server is up"


class _Connection:
    """One keep-alive HTTP/1.1 connection, used by one request at a time on the loop thread."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.reusable = True
        self.answered = False  # some of an answer arrived (so a failure is not a stale connection)
        self.timed_out = False
        self._timer = None

    def arm(self):
        """(Re)start the read timeout: READ_TIMEOUT seconds without progress abort the connection."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(READ_TIMEOUT, self._expire)

    def disarm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self):
        self.timed_out = True
        self.writer.transport.abort()

    def close(self):
        self.disarm()
        self.reusable = False
        self.writer.transport.abort()

    async def exchange(self, method, path, headers, body):
        """Send a request; (status, headers with lower-case names) of its answer."""
        self.answered = False
        self.arm()
        lines = ["%s %s HTTP/1.1\r\n" % (method, path)]
        lines.extend("%s: %s\r\n" % item for item in headers.items())
        lines.append("\r\n")
        self.writer.write("".join(lines).encode("latin-1"))
        if body is not None:
            if isinstance(body, (bytes, bytearray, memoryview)):
                self.writer.write(body)
            else:
                while True:
                    data = body.read(CHUNK)
                    if not data:
                        break
                    self.writer.write(data)
                    await self.writer.drain()
                    self.arm()
        await self.writer.drain()
        while True:
            block = await self.reader.readuntil(b"\r\n\r\n")
            self.answered = True
            lines = block.decode("latin-1").split("\r\n")
            version, status = lines[0].split(" ", 2)[:2]
            if status != "100":  # skip an interim "100 Continue"
                break
        response = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                response[name] = response[name] + ", " + value if name in response else value
        if version == "HTTP/1.0" or response.get("connection", "").lower() == "close":
            self.reusable = False
        return int(status), response

    async def body(self, headers, method):
        """Yield the body of an answer in chunks (Content-Length, chunked, or to the end)."""
        if method == "HEAD":
            return
        reader = self.reader
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    return
                async for chunk in self._exactly(size):
                    yield chunk
                await reader.readexactly(2)
        elif "content-length" in headers:
            async for chunk in self._exactly(int(headers["content-length"])):
                yield chunk
        else:
            self.reusable = False  # the body ends when the connection does
            while True:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    return
                self.arm()
                yield chunk

    async def _exactly(self, length):
        left = length
        while left:
            chunk = await self.reader.read(min(left, CHUNK))
            if not chunk:
                raise _Truncated("%d of %d bytes missing" % (left, length))
            self.arm()
            left -= len(chunk)
            yield chunk

    async def receive_memory(self, headers):
        """The body, as bytes."""
        return b"".join([chunk async for chunk in self.body(headers, "GET")])

    async def receive_file(self, headers, path, offset, create, url):
        """Write the body to the file at `path` from `offset` (a new file when `create`)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC if create else os.O_WRONLY, 0o600)
        except OSError as exc:
            raise local_write_error(exc, url, path) from exc
        try:
            async for chunk in self.body(headers, "GET"):
                try:
                    written = os.pwrite(fd, chunk, offset)
                    while written < len(chunk):
                        written += os.pwrite(fd, memoryview(chunk)[written:], offset + written)
                except OSError as exc:
                    raise local_write_error(exc, url, path) from exc
                offset += len(chunk)
        finally:
            os.close(fd)


async def _drain(connection, status, headers):
    async for _ in connection.body(headers, "GET"):
        pass


async def _failure_of(connection, method, status, headers):
    body = b""
    async for chunk in connection.body(headers, method):
        if len(body) < (64 << 10):
            body += chunk
    code = _CODE.search(body)
    message = _MESSAGE.search(body)
    region = _REGION.search(body)
    code = code.group(1).decode("utf-8", "replace") if code else ""
    if region and code in _REDIRECT_CODES:
        region = region.group(1).decode("ascii", "replace")
    else:
        region = headers.get("x-amz-bucket-region") if status in (301, 307, 400) else None
    message = message.group(1).decode("utf-8", "replace") if message else ""
    return _Failure(status, code, message, headers, region=region)


def _span(status, headers):
    """(first byte, end, total size) of a GET's body."""
    length = int(headers.get("content-length") or 0)
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("content-range", ""))
        if match:
            return int(match.group(1)), int(match.group(2)) + 1, int(match.group(3))
    return 0, length, length


def _reserve(path, size, url):
    """Give the file its final size, with its disk space allocated where the file system can:
    a full disk fails now, with a clear error, not after a gigabyte has arrived."""
    import errno

    os.truncate(path, size)
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise local_write_error(exc, url, path) from exc
    finally:
        os.close(fd)


def _write_empty(path, url):
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    except OSError as exc:
        raise local_write_error(exc, url, path) from exc


def _open_upload(request):
    try:
        return open(request.file, "rb")
    except OSError:
        raise S3LocalFileError(
            "local file %s, to upload to %s, does not exist or cannot be read" % (request.file, request.url),
            "Check the path",
            request.file,
        ) from None


def local_write_error(exc, url, path):
    """The S3LocalFileError of failing to write `path`, the local copy of `url` (also when the
    client writes a small download's file late, as its `path` is first asked for)."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return S3LocalFileError(
            "no space left in %s to download %s" % (os.path.dirname(path), url),
            "Free space there, or point TMPDIR (or S3's tmproot) elsewhere",
            path,
        )
    if exc.errno == errno.ENOENT:
        return S3LocalFileError(
            "cannot write %s to download %s: its folder is gone" % (path, url),
            "Leave the client's temporary folder alone until the client closes",
            path,
        )
    return S3LocalFileError(
        "cannot write %s to download %s: %s" % (path, url, exc.strerror or exc), "Check the folder's permissions", path
    )


# --- SigV4 ------------------------------------------------------------------------------------


def signing_key(secret, date, region):
    """The SigV4 key of a day and region for S3 (derived once a day, then cached)."""
    key = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode("ascii"), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sign_v4(method, path, query, headers, access_key, key, stamp, region):
    """The Authorization header of an S3 request (AWS Signature Version 4, header form).

    `path` is the URI-encoded path as sent, `query` the canonical query string, `headers`
    every header to sign, lower-case names (host and x-amz-content-sha256 among them).
    """
    names = sorted(headers)
    canonical = "%s\n%s\n%s\n%s\n%s\n%s" % (
        method,
        path,
        query,
        "".join("%s:%s\n" % (name, " ".join(str(headers[name]).split())) for name in names),
        ";".join(names),
        headers["x-amz-content-sha256"],
    )
    scope = "%s/%s/s3/aws4_request" % (stamp[:8], region)
    to_sign = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key,
        scope,
        ";".join(names),
        signature,
    )


# --- small helpers --------------------------------------------------------------------------------


def _http_time(text):
    if not text:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return int(parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError):
        return None


def _proxied(scheme, host):
    import urllib.request

    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(host or "")


def _describe(exc):
    text = str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _action(method):
    return {"GET": "read", "HEAD": "read", "PUT": "write", "LIST": "list"}.get(method, method.lower())
