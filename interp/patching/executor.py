"""The executors' old home, kept so that old imports keep working: they live in
:mod:`interp.execution` now, a package of their own because eviction and block relevance run
their chunks on them with no engine plan."""

from interp.execution import (  # noqa: F401 (re-exports)
    IN_FLIGHT,
    MODELS_PER_WORKER,
    Done,
    Executor,
    ExecutorFailed,
    LocalExecutor,
    RayExecutor,
    Work,
    default_executor,
    import_ray,
    recorded,
    run_record,
    using,
)
