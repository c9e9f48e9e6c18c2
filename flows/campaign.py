"""The ``campaign_batch`` Prefect flow (deployments: ``flows/campaign.py:campaign_batch``): the
steps and body of ``flows.batch``, run by Prefect: the flow run, its task runs and artifacts are
recorded by the server. Commands without a server call ``flows.batch.campaign_batch`` directly
(``flows.runtime.run_flow``) and never import this module, nor Prefect.
"""

from __future__ import annotations

from prefect import flow

from flows import batch

campaign_batch = flow(name="campaign_batch", log_prints=True)(batch.campaign_batch)
