"""serveConfigV2 is derived from the local serve-config.yaml, validates with Ray's own
ServeDeploySchema with unknown keys rejected, and names only deployments that exist in code."""

from __future__ import annotations

import importlib
import types
import typing
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from cluster.config import topology
from cluster.kuberay.render import LOCAL_SERVE_CONFIG, OVERLAY, production_serve_config, render


def unknown_keys(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """Keys in ``data`` that ``model`` (and its nested models) do not declare.

    Ray's HTTP options and top-level config accept extra keys for forward compatibility, so a
    misspelt option would be silently ignored: this walks the models and reports them."""
    if not isinstance(data, dict):
        return []
    fields = model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    found = [f"{path}{k}" for k in data if k not in known]
    for name, field in fields.items():
        value = data.get(name, data.get(field.alias) if field.alias else None)
        if value is None:
            continue
        for inner in _models(field.annotation):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    found += unknown_keys(inner, item, f"{path}{name}[{i}].")
            else:
                found += unknown_keys(inner, value, f"{path}{name}.")
    return found


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    (rs,) = [d for d in render() if d["kind"] == "RayService"]
    return yaml.safe_load(rs["spec"]["serveConfigV2"])


def test_validates_with_rays_serve_deploy_schema(config) -> None:
    ServeDeploySchema.model_validate(config)
    assert unknown_keys(ServeDeploySchema, config) == []


def test_unknown_key_check_catches_typos(config) -> None:
    config = yaml.safe_load(yaml.safe_dump(config))
    config["http_options"]["keep_alive_timeout"] = 5
    config["applications"][0]["deployments"][0]["autoscaling_config"]["min_replica"] = 3
    assert sorted(unknown_keys(ServeDeploySchema, config)) == [
        "applications[0].deployments[0].autoscaling_config.min_replica",
        "http_options.keep_alive_timeout",
    ]


def test_derived_from_the_local_serve_config(config) -> None:
    local = yaml.safe_load(LOCAL_SERVE_CONFIG.read_text())
    overlay = yaml.safe_load(OVERLAY.read_text())
    excluded = set(overlay["exclude_applications"])
    expected = [a for a in local["applications"] if a["name"] not in excluded]
    assert [(a["name"], a["route_prefix"], a["import_path"]) for a in config["applications"]] == [
        (a["name"], a["route_prefix"], a["import_path"]) for a in expected
    ]
    for prod, loc in zip(config["applications"], expected, strict=True):
        assert [d["name"] for d in prod["deployments"]] == [d["name"] for d in loc["deployments"]]
        for p, lo in zip(prod["deployments"], loc["deployments"], strict=True):
            # local-only and production-only values, everything else carried over
            for key, value in lo.items():
                if key not in (
                    "num_replicas",
                    "ray_actor_options",
                    "graceful_shutdown_timeout_s",
                    *overlay["deployment_defaults"],
                    *overlay["deployments"].get(lo["name"], {}),
                ):
                    assert p[key] == value, (lo["name"], key)
    # The derivation is a function of the two files: a new local app appears in production.
    local["applications"].append(
        {
            "name": "new-api",
            "route_prefix": "/v1/new",
            "import_path": "pocdojo.api.serve_app:new_api",
            "deployments": [{"name": "NewApi", "num_replicas": 1}],
        }
    )
    derived = production_serve_config(local, overlay)
    (new,) = [a for a in derived["applications"] if a["name"] == "new-api"]
    assert new["deployments"][0]["autoscaling_config"]["min_replicas"] >= 3
    assert "num_replicas" not in new["deployments"][0]


def test_production_high_availability_settings(config) -> None:
    assert config["proxy_location"] == "EveryNode"
    assert config["http_options"]["host"] == "0.0.0.0"
    assert config["http_options"]["keep_alive_timeout_s"] > topology.TIMEOUTS.alb_idle_s
    for app in config["applications"]:
        for d in app["deployments"]:
            assert d["autoscaling_config"]["min_replicas"] >= len(topology.AVAILABILITY_ZONES)
            assert d["max_replicas_per_node"] == 1
            assert "num_replicas" not in d
            assert d["graceful_shutdown_timeout_s"] > 0
            assert d["ray_actor_options"]["resources"]["serve_worker"] > 0
    assert "identity" not in {a["name"] for a in config["applications"]}


def test_local_config_keeps_small_replica_counts() -> None:
    # `pocdojo up` deploys this file on a 2-core machine; production values never leak back.
    local = yaml.safe_load(LOCAL_SERVE_CONFIG.read_text())
    for app in local["applications"]:
        for d in app["deployments"]:
            assert (
                "autoscaling_config" not in d or d["autoscaling_config"].get("min_replicas", 0) <= 1
            )


def code_deployments(import_path: str) -> set[str]:
    """Deployment names in the graph the application builder really builds."""
    module_name, attr = import_path.split(":")
    builder = getattr(importlib.import_module(module_name), attr)
    app = builder({})
    names: set[str] = set()
    pending = [app]
    while pending:
        deployment = pending.pop()._bound_deployment
        names.add(deployment.name)
        # Composed deployments arrive as bound applications in the constructor arguments.
        pending += [
            a
            for a in [*deployment.init_args, *deployment.init_kwargs.values()]
            if isinstance(a, Application)
        ]
    return names


def test_names_only_deployments_that_exist_in_code(config) -> None:
    for app in config["applications"]:
        in_code = code_deployments(app["import_path"])
        named = {d["name"] for d in app["deployments"]}
        assert named <= in_code, f"{app['name']}: {named - in_code} not in {app['import_path']}"


def test_code_check_catches_a_deployment_missing_from_code(config) -> None:
    app = config["applications"][0]
    assert "NoSuchDeployment" not in code_deployments(app["import_path"])


def test_one_replica_of_every_deployment_fits_on_a_serve_worker(config) -> None:
    # max_replicas_per_node: 1 spreads replicas; a worker must hold one of each deployment,
    # and a worker group per zone means a zone's workers can host every deployment.
    cpus = sum(
        d["ray_actor_options"]["num_cpus"]
        for app in config["applications"]
        for d in app["deployments"]
    )
    assert cpus <= float(topology.SERVE_WORKER_CPU) - 0.5, "leave room for the proxy"
    # zone loss: the two surviving zones can grow to hold every deployment's minimum
    floor = max(
        d["autoscaling_config"]["min_replicas"]
        for app in config["applications"]
        for d in app["deployments"]
    )
    assert floor <= 2 * topology.SERVE_WORKERS_PER_ZONE_MAX


def test_overlay_overrides_only_deployments_of_the_local_config() -> None:
    local = yaml.safe_load(LOCAL_SERVE_CONFIG.read_text())
    overlay = yaml.safe_load(OVERLAY.read_text())
    names = {d["name"] for app in local["applications"] for d in app["deployments"]}
    assert set(overlay["deployments"]) <= names, "stale override in production.yaml"
    assert set(overlay["exclude_applications"]) <= {app["name"] for app in local["applications"]}
