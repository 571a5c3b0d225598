"""Deploy Serve apps from the committed YAML files, from Python (the same path as ``serve run FILE``).

``serve run``/``serve deploy`` take one file that declares every app; :func:`deploy` merges several
files (e.g. ``policy.yaml``, ``small_policy.yaml``, ``prm.yaml``) into one declaration, applies
per-app ``args`` overrides (tests point ``model`` at tiny models), and waits until all are RUNNING.
Deployment options (replicas, autoscaling, resources) are applied by Serve from the YAML.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "app_running",
    "app_state_line",
    "deploy",
    "deploy_config",
    "load_serve_config",
    "replica_stats",
    "single_app_config",
    "swap_weights",
]

log = logging.getLogger(__name__)


def load_serve_config(
    paths: Sequence[str | Path],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    sim: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge Serve config files into one; ``overrides[app]`` is merged into that app's ``args``.

    ``sim`` (SimOptions fields, :mod:`sphere_ray.sim`) switches every generation app to ``backend: sim``
    and every PRM app to ``kind: sim``: the one override that rehearses a GPU YAML on the simulated
    engine, replicas, resources and autoscaling unchanged. An ``http_options.host`` beyond loopback (HTTP
    exposed) sets ``require_api_key: true`` on every app (:mod:`sphere_ray.serving.guard`).

    Raises:
        ValueError: a file is unreadable, two files declare the same app, or an override names no app.
    """
    merged: dict[str, Any] = {"applications": []}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"serve config {path}: {e}") from e
        for key in ("proxy_location", "http_options"):
            merged.setdefault(key, data.get(key))
        merged["applications"] += copy.deepcopy(data.get("applications", []))
    names = [a["name"] for a in merged["applications"]]
    if len(set(names)) != len(names):
        raise ValueError(f"serve config: app declared twice in {list(paths)}: {names}")
    for app_name, args in (overrides or {}).items():
        if app_name not in names:
            raise ValueError(f"override for unknown app {app_name!r}; apps: {names}")
        app = merged["applications"][names.index(app_name)]
        app["args"] = {**app.get("args", {}), **args}
    if sim is not None:
        for app in merged["applications"]:
            _simulate(app, dict(sim))
    if not _loopback((merged.get("http_options") or {}).get("host", "127.0.0.1")):
        for app in merged["applications"]:  # HTTP beyond this host: no app answers without the API key
            app.setdefault("args", {})["require_api_key"] = True
    return {k: v for k, v in merged.items() if v is not None}


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it resolves beyond this host


def _simulate(app: dict[str, Any], sim: dict[str, Any]) -> None:
    args = app.setdefault("args", {})
    if app.get("import_path", "").endswith(":generation_app"):
        args.update(backend="sim", sim=sim)
    elif app.get("import_path", "").endswith(":prm_app"):
        args.pop("policy_app", None)
        args.update(kind="sim", options=sim, model=args.get("model") or "Qwen/Qwen2.5-Math-PRM-7B")


def deploy(
    paths: Sequence[str | Path],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    timeout_s: float = 900.0,
    sim: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Deploy every app of ``paths`` on the connected Ray cluster; return ``{app name: handle}``.

    Apps that are not in ``paths`` are removed (a Serve config declares the whole set).

    Raises:
        TimeoutError: not all apps RUNNING within ``timeout_s``.
        RuntimeError: an app failed to deploy (its message says why).
    """
    return deploy_config(load_serve_config(paths, overrides, sim), timeout_s)


def deploy_config(config: Mapping[str, Any], timeout_s: float = 900.0, keep_running: bool = False) -> dict[str, Any]:
    """Deploy a Serve config (the dict form of the YAML) and wait until its apps are RUNNING; see :func:`deploy`.

    ``keep_running=True`` adds the config's apps to the ones already running instead of replacing them.
    """
    from ray import serve
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema, ServeInstanceDetails

    schema = ServeDeploySchema.model_validate(dict(config))
    client = serve_start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location)
    names = [app.name for app in schema.applications]
    if keep_running:
        details = ServeInstanceDetails(**client.get_serve_details())
        others = [a for a in _running_apps(details) if a.name not in names]
        schema = schema.model_copy(update={"applications": [*others, *schema.applications]})
    client.deploy_apps(schema)
    _wait_running(names, timeout_s)
    return {name: serve.get_app_handle(name) for name in names}


def swap_weights(app: str, weights: str | None, served_model_name: str | None, timeout_s: float = 900.0) -> None:
    """Make the running generation app ``app`` serve ``weights`` (null: its own ``model``) in place.

    The app is deployed again with its running config and only its ``GenerationServer``'s ``user_config``
    changed (:class:`~sphere_ray.serving.apps.WeightsConfig`), so Serve reconfigures the replicas it has
    instead of starting new ones, and replicas started later load the same weights. Returns when every
    running replica reports ``served_model_name``.

    Raises:
        ValueError: ``app`` is not running.
        RuntimeError, TimeoutError: a replica could not load the weights (the message says why), or too slow.
    """
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema, ServeInstanceDetails

    from sphere_ray.serving.apps import WeightsConfig

    client = serve_start()
    details = ServeInstanceDetails(**client.get_serve_details())
    apps = _running_apps(details)
    if app not in {a.name for a in apps}:
        raise ValueError(f"swap_weights: no running Serve app named {app!r}")
    user_config = WeightsConfig(weights=weights, served_model_name=served_model_name).model_dump()
    apps = [_with_user_config(a, user_config) if a.name == app else a for a in apps]
    schema = ServeDeploySchema(applications=apps, http_options=details.http_options,
                               proxy_location=details.proxy_location)  # fmt: skip
    client.deploy_apps(schema)
    _wait_running([app], timeout_s)
    name = served_model_name or weights
    if name is not None:
        _wait_serving(app, name, timeout_s)


def _with_user_config(app: Any, user_config: dict[str, Any]) -> Any:
    """``app`` (a ``ServeApplicationSchema``) with ``user_config`` on its ``GenerationServer`` deployment."""
    data = app.model_dump(exclude_unset=True)
    deployments = data.setdefault("deployments", [])
    entry = next((d for d in deployments if d.get("name") == "GenerationServer"), None)
    if entry is None:
        deployments.append(entry := {"name": "GenerationServer"})
    entry["user_config"] = user_config
    return type(app).model_validate(data)


def _wait_serving(app: str, name: str, timeout_s: float) -> None:
    """Wait until every running replica of ``app`` reports ``name`` as its model."""
    start = time.monotonic()
    while (models := {s.get("model") for s in replica_stats(app).values()}) != {name}:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{app}: replicas serve {sorted(map(str, models))} after {timeout_s:.0f}s, not {name!r}")
        time.sleep(1)


def app_running(app: str) -> bool:
    """Whether the Serve app ``app`` exists and is RUNNING."""
    from ray import serve

    status = serve.status().applications.get(app)
    return status is not None and status.status == "RUNNING"


def _running_apps(details: Any) -> list[Any]:
    """The running apps' configs as they were deployed (``ServeApplicationSchema``), from ``ServeInstanceDetails``."""
    return [a.deployed_app_config for a in details.applications.values() if a.deployed_app_config is not None]


def single_app_config(
    path: str | Path, app: str, new_name: str, args: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A Serve config holding one app of ``path``, renamed ``new_name`` (route ``/new_name``), ``args`` merged.

    Raises:
        ValueError: ``app`` is not in the file.
    """
    config = load_serve_config([path], {app: dict(args or {})})
    config["applications"] = [a for a in config["applications"] if a["name"] == app]
    config["applications"][0].update(name=new_name, route_prefix=f"/{new_name}")
    return config


def _wait_running(names: list[str], timeout_s: float, heartbeat_s: float = 30.0) -> None:
    """Wait until every app in ``names`` is RUNNING: a log line per state change and a heartbeat while waiting."""
    from ray import serve

    start = time.monotonic()
    shown: dict[str, str] = {}
    last_line = start
    while True:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else "NOT_STARTED" for n in names}
        failed = {n: _why(apps[n]) for n, s in states.items() if s in ("DEPLOY_FAILED", "UNHEALTHY")}
        if failed:
            raise RuntimeError(f"serve apps failed: {failed}")
        elapsed = time.monotonic() - start
        if all(s == "RUNNING" for s in states.values()):
            log.info("serve apps running after %.0f s: %s", elapsed, names)
            return
        now = {n: app_state_line(apps.get(n)) for n in names}
        for n in names:
            if now[n] != shown.get(n):
                log.info("serve app %s: %s (%.0f s)", n, now[n], elapsed)
                last_line = time.monotonic()
        shown = now
        if time.monotonic() - last_line >= heartbeat_s:
            waiting = [n for n in names if states[n] != "RUNNING"]
            log.info("serve: waiting for %s, %.0f s so far (timeout %.0f s)", waiting, elapsed, timeout_s)
            last_line = time.monotonic()
        if elapsed > timeout_s:
            raise TimeoutError(f"serve apps not running after {timeout_s:.0f}s: {states}")
        time.sleep(2)


def app_state_line(app: Any) -> str:
    """One app's status with its replicas by state, e.g. ``DEPLOYING (replicas: 1 STARTING)``.

    Args:
        app: Serve's ``ApplicationStatusOverview`` (``status``, ``deployments`` -> ``replica_states``), or None
            when Serve does not know the app yet.
    """
    if app is None:
        return "NOT_STARTED"
    counts: dict[str, int] = {}
    for deployment in app.deployments.values():
        for state, n in (deployment.replica_states or {}).items():
            name = str(getattr(state, "value", state))
            counts[name] = counts.get(name, 0) + n
    status = str(getattr(app.status, "value", app.status))
    replicas = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if n)
    return f"{status} (replicas: {replicas})" if replicas else status


def _why(app: Any) -> str:
    """An app's status message plus its deployments' messages (where the real error is)."""
    parts = [app.message] + [f"{name}: {d.message}" for name, d in app.deployments.items() if d.message]
    return " | ".join(p for p in parts if p)


def replica_stats(app: str, max_calls: int = 200) -> dict[str, dict[str, Any]]:
    """``stats()`` of every RUNNING replica of ``app``'s deployments, keyed by replica id.

    Unsessioned calls are spread over the replicas by the router, so this calls until every replica
    counted by ``serve.status()`` has answered (at most ``max_calls`` calls).
    """
    from ray import serve

    deployments = serve.status().applications[app].deployments.values()
    expected = sum(d.replica_states.get("RUNNING", 0) for d in deployments)
    handle, seen = serve.get_app_handle(app), {}
    for _ in range(max_calls):
        stats = handle.stats.remote().result(timeout_s=60)
        seen[stats["replica"]] = stats
        if len(seen) >= expected:
            break
    return seen
