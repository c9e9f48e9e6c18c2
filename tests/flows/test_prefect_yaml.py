"""prefect.yaml: every deployment's entrypoint imports and names a flow whose parameters exist."""

from __future__ import annotations

import importlib
import inspect

import yaml


def _deployments(repo):
    return yaml.safe_load((repo / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]


def test_every_entrypoint_is_a_flow_with_known_parameters(repo):
    from prefect import Flow

    deployments = _deployments(repo)
    assert deployments
    for deployment in deployments:
        path, _, name = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert isinstance(flow, Flow), deployment["name"]
        accepted = set(inspect.signature(flow.fn).parameters)
        unknown = set(deployment.get("parameters", {})) - accepted
        assert not unknown, f"{deployment['name']}: parameters {unknown} are not parameters of {name}"


def test_scheduled_deployments_use_a_known_pool(repo):
    pools = yaml.safe_load((repo / "prefect.yaml").read_text(encoding="utf-8"))["definitions"]["work_pools"]
    names = {p["name"] for p in pools.values()}
    for deployment in _deployments(repo):
        assert deployment["work_pool"]["name"] in names


def test_campaign_deployments_shard_on_the_render_shard_deployment(repo):
    """A campaign run on a worker names the shard deployment by FLOW/DEPLOYMENT; that deployment
    runs render_shard on the gpu pool, unscheduled, with heartbeats often enough for crash detection."""
    from flows.sharding import DEPLOYMENT_ENV

    deployments = _deployments(repo)
    shard_names = {f"render_shard/{d['name']}": d for d in deployments
                   if d["entrypoint"] == "flows/shard.py:render_shard"}
    assert shard_names
    campaigns = [d for d in deployments if d["entrypoint"] == "flows/campaign.py:campaign_batch"]
    assert campaigns
    for deployment in campaigns:
        env = deployment["work_pool"].get("job_variables", {}).get("env", {})
        assert env.get(DEPLOYMENT_ENV) in shard_names, deployment["name"]
        assert deployment["work_pool"]["name"] == "cpu", f"{deployment['name']} would hold a gpu worker while it waits"
    for shard in shard_names.values():
        assert shard["work_pool"]["name"] == "gpu" and not shard.get("schedules")
        heartbeat = int(shard["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"])
        assert 30 <= heartbeat <= 45  # crash detection waits $BRANDBATCH_SHARD_STALE_SECONDS (>= 45, default 90)
