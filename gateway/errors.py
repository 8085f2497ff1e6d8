"""Every error a client can see: one code, one HTTP status, one gRPC status, rendered in one place.

Lower layers keep their own errors: `STORAGE_ERRORS` is the one map from storage's exceptions to these,
`DISPATCH_ERRORS` the one map from the dispatcher's failure reasons.
Anything that is neither an `ApiError` nor mapped is a bug: logged with its traceback and answered 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc

from gateway.dispatch.failures import Failure, Reason
from gateway.storage import errors as storage


class ApiError(Exception):
    """Base of the error tree. `code` is the stable machine-readable name clients match on."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param  # the offending field, for clients that point at it (OpenAI's `param`)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON error body: `{"error": {"code", "message"}}`."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(ApiError):
    code = "invalid_input"
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class InvalidJson(InvalidInput):
    code = "invalid_json"


class InputTooLong(InvalidInput):
    code = "input_too_long"


class InvalidFilter(InvalidInput):
    code = "invalid_filter"


class InvalidSnapshot(InvalidInput):
    """An uploaded collection snapshot failed its checks (truncated, altered, not one); nothing was created."""

    code = "invalid_snapshot"


class Unauthorized(ApiError):
    """No API key, or one the gateway does not know. Carries the challenge RFC 6750 asks for."""

    code = "unauthorized"
    http_status = 401
    grpc_status = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, message: str, *, invalid_key: bool = False) -> None:
        challenge = 'Bearer realm="akidb", error="invalid_token"' if invalid_key else 'Bearer realm="akidb"'
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    """A known key without the scope the route needs; the message names the scope."""

    code = "forbidden"
    http_status = 403
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class NotFound(ApiError):
    code = "not_found"
    http_status = 404
    grpc_status = grpc.StatusCode.NOT_FOUND


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class SnapshotNotFound(NotFound):
    code = "snapshot_not_found"


class MethodNotAllowed(ApiError):
    code = "method_not_allowed"
    http_status = 405
    grpc_status = grpc.StatusCode.UNIMPLEMENTED


class Conflict(ApiError):
    code = "conflict"
    http_status = 409
    grpc_status = grpc.StatusCode.ALREADY_EXISTS


class CollectionExists(Conflict):
    code = "collection_exists"


class JobConflict(Conflict):
    code = "job_conflict"


class ModelNotServed(Conflict):
    """A model no worker serves now, named where a 404 would read as "the collection is missing" (a
    re-embedding). The request is valid; it succeeds once a worker for the model connects."""

    code = "model_not_served"
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class DimensionMismatch(InvalidInput):
    """A vector length, `dimension` or OpenAI `dimensions` that the collection or model does not have.

    400, as the seed API has always answered it (clients are written against it), with its own code: the
    OpenAPI document cannot state a length that depends on the collection, so it lists this 400 on the
    operations that can give it, and schemathesis.toml tells the fuzzer so."""

    code = "dimension_mismatch"


class RequestTimeout(ApiError):
    """The client sent its request body too slowly; the connection is closed after this answer."""

    code = "request_timeout"
    http_status = 408
    grpc_status = grpc.StatusCode.DEADLINE_EXCEEDED


class PayloadTooLarge(ApiError):
    code = "payload_too_large"
    http_status = 413
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class UnsupportedMediaType(ApiError):
    code = "unsupported_media_type"
    http_status = 415
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class WorkerFailed(ApiError):
    """A worker took the job and failed it: the upstream's fault, not the caller's."""

    code = "worker_error"
    http_status = 502
    grpc_status = grpc.StatusCode.INTERNAL


class PoisonJob(WorkerFailed):
    """Every worker that took the job died with it: the input itself likely crashes the engine."""

    code = "worker_failed"


class Unavailable(ApiError):
    """Try again later: no worker, or the queue is full. Carries Retry-After."""

    code = "unavailable"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class StorageUnavailable(Unavailable):
    """The storage engine's database is unreachable or timed out; nothing was done."""

    code = "storage_unavailable"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NotImplementedHere(ApiError):
    """The configured storage engine lacks this feature; the message names the engine and the feature."""

    code = "not_implemented"
    http_status = 501
    grpc_status = grpc.StatusCode.UNIMPLEMENTED


class NoWorker(Unavailable):
    code = "no_worker"


class QueueFull(Unavailable):
    code = "queue_full"


class NotReady(Unavailable):
    code = "not_ready"


class ModelChanged(ApiError):
    """A re-embedding swapped the collection's model during the request: nothing was done; retry."""

    code = "model_changed"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


class FulltextPending(ApiError):
    """The collection's full-text index waits for disk space to be built: keyword and hybrid searches wait too."""

    code = "fulltext_pending"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


class InsufficientStorage(ApiError):
    """The disk holding the data dir is full: the write was refused and nothing of it stored. Reads still work."""

    code = "insufficient_storage"
    http_status = 507
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED  # gRPC serves no writes; here for completeness


class Timeout(ApiError):
    code = "timeout"
    http_status = 504
    grpc_status = grpc.StatusCode.DEADLINE_EXCEEDED


# Storage's exceptions as clients see them. The bare `StorageError` (an unusable data directory) stops
# the gateway at start-up and is not here: met while serving, it is a bug.
STORAGE_ERRORS: dict[type[storage.StorageError], type[ApiError]] = {
    storage.CollectionNotFound: CollectionNotFound,
    storage.DocumentNotFound: DocumentNotFound,
    storage.CollectionExists: CollectionExists,
    storage.InvalidFilter: InvalidFilter,
    storage.DimensionMismatch: DimensionMismatch,
    storage.InvalidVector: InvalidInput,
    storage.KeywordSyntaxError: InvalidInput,
    storage.StorageFull: InsufficientStorage,
    storage.ModelChanged: ModelChanged,
    storage.FulltextPending: FulltextPending,
    storage.JobConflict: JobConflict,
    storage.JobNotFound: JobNotFound,
    storage.LeaseLost: JobConflict,  # the job moved to another gateway, or ended, under this request
    storage.VectorOnlyDocuments: InvalidInput,
    storage.SnapshotNotFound: SnapshotNotFound,
    storage.SnapshotInvalid: InvalidSnapshot,
    storage.UnstorableValue: InvalidInput,
    storage.EngineUnsupported: NotImplementedHere,
    storage.EngineUnavailable: StorageUnavailable,
}


def from_storage(exc: storage.StorageError) -> ApiError | None:
    """The API error a storage exception shows clients, with its message and param; None if unmapped."""
    api = next((STORAGE_ERRORS[c] for c in type(exc).__mro__ if c in STORAGE_ERRORS), None)
    return None if api is None else api(exc.message, param=exc.param)


# The dispatcher's failure reasons as clients see them (every reason has one).
DISPATCH_ERRORS: dict[Reason, type[ApiError]] = {
    Reason.QUEUE_FULL: QueueFull,
    Reason.SHUTTING_DOWN: NoWorker,
    Reason.DEADLINE: Timeout,
    Reason.INVALID_JOB: InvalidInput,
    Reason.WORKER_FAILED: WorkerFailed,
    Reason.POISONED: PoisonJob,
}


def from_dispatch(failure: Failure) -> ApiError:
    """The API error a dispatcher's failure shows its callers, with its message."""
    return DISPATCH_ERRORS[failure.reason](failure.message)


def as_api_error(exc: Exception) -> ApiError | None:
    """What a client is told about `exc`: itself if an `ApiError`, its storage mapping, else None (a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, storage.StorageError):
        return from_storage(exc)
    return None
