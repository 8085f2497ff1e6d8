"""/collections/{collection}/reembed and /collections/{collection}/jobs/{job_id} bodies."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.api.schemas.common import Pooling, choices

JobState = Annotated[
    Literal["running", "done", "cancelled", "failed"], choices("running", "done", "cancelled", "failed")
]


class ReembedBody(msgspec.Struct, forbid_unknown_fields=True):
    """POST /collections/{collection}/reembed: embed every stored text with `model`, then switch to it.

    `pooling` defaults to the model's. Documents stored with a vector and no text cannot be re-embedded:
    the job refuses to start unless `drop_vector_only` is true, and then removes them at the switch.
    """

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    pooling: Pooling | None = None
    drop_vector_only: bool = False


class Job(msgspec.Struct):
    """A re-embedding job. `total` counts documents to embed (inserts during the job add to it);
    `texts_per_s` and `eta_s` are measured since this gateway took the job up; `resumed_from` is `done` when
    a gateway last resumed it after a restart (0: never restarted)."""

    id: str
    collection: str
    model: str
    pooling: str | None
    dimension: int
    state: JobState
    error: str | None
    done: int
    total: int
    texts_per_s: float | None
    eta_s: float | None
    drop_vector_only: bool
    vector_only: int
    dropped: int
    resumed_from: int
    created_at: float
    finished_at: float | None
