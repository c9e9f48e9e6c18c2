"""Where a campaign's stages run: in this process, or as shards on Prefect workers (the choice,
read from settings), and how a shard's or a render step's failure is retried.

Prefect is imported only when shards are asked for, so a command without a Prefect server never
loads it (``flows.runtime``). The shard flows and the code that dispatches to them are in
``flows.shard``.
"""

from __future__ import annotations

from settings import load_settings, variable

DEPLOYMENT_ENV = variable("shard_deployment")


def _transient(_task, _task_run, state) -> bool:
    """Retry store and network trouble, not bad arguments (they fail the same way again)."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, (ValueError, TypeError))


# Backoff 10 s, 20 s (Prefect's exponential_backoff(10) for 2 retries) with +-50 % jitter (Prefect's
# retry_jitter_factor, in flow runs), so workers that failed together (a store outage) do not retry
# together. render_missing itself never raises for a bad job; what reaches a retry is the store or
# the network.
RENDER_RETRIES = dict(retries=2, retry_delay_seconds=[10, 20],
                      retry_jitter_factor=0.5, retry_condition_fn=_transient)


def shard_deployment() -> str | None:
    """The shard deployment to render on (``flow/deployment``), or None to render in-process.

    ``$BRANDBATCH_SHARD_DEPLOYMENT`` asks for shards; they need a Prefect server
    (``PREFECT_API_URL``), because Prefect's temporary local server ends with the process."""
    return _deployment("shard_deployment", "render shards", "render in-process")


def check_deployment() -> str | None:
    """The check shard deployment for QA, queueing and export of finished rows
    (``$BRANDBATCH_CHECK_DEPLOYMENT``), or None to do them in-process; needs a Prefect server."""
    return _deployment("check_deployment", "check shards (QA and export)", "check and export in-process")


def _deployment(setting: str, what: str, otherwise: str) -> str | None:
    name = getattr(load_settings(), setting)
    if not name:
        return None
    from prefect.settings import PREFECT_API_URL

    env = variable(setting)
    if not PREFECT_API_URL.value():
        raise ValueError(f"${env}={name!r} asks for {what} on Prefect workers, but "
                         f"PREFECT_API_URL is not set: point it at the server the workers poll "
                         f"(e.g. http://127.0.0.1:4200/api), or unset ${env} to {otherwise}")
    return name
