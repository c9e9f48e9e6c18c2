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
