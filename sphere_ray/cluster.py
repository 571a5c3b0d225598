"""A fake multi-node GPU cluster on one machine, to rehearse a cluster run without GPUs.

``sphere-ray cluster up`` starts a real Ray head plus worker nodes with ``ray start``. The workers
advertise fake GPUs (``--num-gpus``), so ``deployments/gpu.yaml`` places its replicas by ``num_gpus: 1``
across them exactly as on a GPU cluster; the simulated engine (``--sim``) stands in for vLLM.

The cluster keeps to itself so it never collides with another Ray on the machine:
- its own temp dir (``/tmp/sphere-ray-<port>``: logs, sockets, the state file ``cluster.json``);
- its own GCS, dashboard (job server), client-server and Serve ports, and random worker ports;
- its own token: token auth stays on (Ray 2.60's default) with a token written to ``<temp_dir>/auth_token``,
  which ``sphere-ray cluster env`` exports (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``);
- Serve started with a head-only proxy on its own port: every fake node shares one host, so a proxy per
  node (``proxy_location: EveryNode``) could not bind one port; apps deployed later keep these options;
- ``down`` stops only the processes of this cluster (found by its temp dir and GCS port, with their
  children), never ``ray stop``, which would stop every Ray of the user on the machine.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sphere_ray.config import option

__all__ = ["FakeClusterConfig", "cluster_env", "connect_ray", "down", "read_state", "status", "up"]

log = logging.getLogger(__name__)

MAX_TEMP_DIR = 48
"""Ray puts sockets at ``<temp_dir>/session_<date>_<pid>/sockets/...``; Unix socket paths are capped at 107 bytes."""


def connect_ray(
    address: str | None = None, log_to_driver: bool = False, *, num_cpus: int | None = None, quiet: bool = False
) -> None:
    """The one way a process joins Ray: ``address`` (or the job's cluster, or a new local one) unless connected.

    Ray Data's console output is quieted for a person watching the job's own progress line: its progress
    bars are off, and its INFO lines (execution plans, operator status) go to its log file
    (``<session>/logs/ray-data.log``) only; its warnings still reach the console.

    Args:
        address: a GCS address, ``auto``, or None.
        log_to_driver: stream the workers' and actors' output to this console.
        num_cpus: the logical CPUs of a new local cluster (tests and benchmarks declare more than the cores, so
            that their actors fit); not allowed with ``address``.
        quiet: Ray's own INFO lines off, and no dashboard for a new local cluster (tests, benchmarks and
            helper processes).
    """
    import ray

    if not ray.is_initialized():
        if address and num_cpus is not None:
            raise ValueError("connect_ray: num_cpus is for a new local cluster, not with address")
        options: dict[str, Any] = {"log_to_driver": log_to_driver}
        if address:
            options["address"] = address
        if num_cpus is not None:
            options["num_cpus"] = num_cpus
        if quiet:
            options["logging_level"] = "WARNING"
        if quiet and not address:
            options["include_dashboard"] = False
        ray.init(**options)
    _quiet_ray_data()


def _quiet_ray_data() -> None:
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
            if not any(isinstance(f, _NoProgressBarNotice) for f in handler.filters):
                handler.addFilter(_NoProgressBarNotice())


class _NoProgressBarNotice(logging.Filter):
    """Drops Ray Data's warning that its progress bars are off (they are off on purpose here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")


@dataclass
class FakeClusterConfig:
    """``sphere-ray cluster up|down|status|env``: a head plus ``workers`` fake-GPU nodes on this machine."""

    workers: int = option(2, "worker nodes (each a raylet with fake GPUs)")
    gpus_per_worker: int = option(4, "fake GPUs each worker advertises (replicas ask num_gpus: 1)")
    cpus_per_worker: int | None = option(None, "logical CPUs per worker (null: 4 per GPU + 4, as gpu.yaml asks)")
    head_cpus: int = option(4, "logical CPUs of the head (no GPUs: driver, Serve controller and proxy)")
    port: int = option(6390, "GCS port of the head; also names the cluster (not 6379, Ray's default)")
    dashboard_port: int = option(8266, "dashboard / job server port: ray job submit --address http://127.0.0.1:PORT")
    serve_port: int = option(8001, "Serve HTTP port (one proxy, on the head)")
    temp_dir: str | None = option(None, "Ray's temp dir for this cluster (null: /tmp/sphere-ray-<port>)")
    object_store_mib: int = option(256, "object store per node, MiB")
    timeout_s: float = option(180.0, "how long up waits for every node to join, and down for processes to exit")

    def __post_init__(self) -> None:
        for name in ("workers", "gpus_per_worker", "head_cpus", "object_store_mib"):
            if getattr(self, name) < (0 if name == "workers" else 1):
                raise ValueError(f"{name} must be >= {0 if name == 'workers' else 1}, got {getattr(self, name)}")
        if self.cpus_per_worker is not None and self.cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker must be >= 1 or null, got {self.cpus_per_worker}")
        for name in ("port", "dashboard_port", "serve_port"):
            if not 1024 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be a port in 1024..65535, got {getattr(self, name)}")
        if len({self.port, self.dashboard_port, self.serve_port}) != 3:
            raise ValueError("port, dashboard_port and serve_port must differ")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        self.temp_dir = os.path.abspath(self.temp_dir or f"/tmp/sphere-ray-{self.port}")
        if len(self.temp_dir) > MAX_TEMP_DIR:
            raise ValueError(f"temp_dir must be at most {MAX_TEMP_DIR} chars (Ray's socket paths): {self.temp_dir}")

    @property
    def worker_cpus(self) -> int:
        """Logical CPUs each worker advertises."""
        return self.cpus_per_worker or 4 * self.gpus_per_worker + 4


def up(cfg: FakeClusterConfig) -> dict[str, Any]:
    """Start the head and the workers, wait until all have joined, start Serve; return the state.

    The state (also written to ``<temp_dir>/cluster.json``): ``address`` (GCS, for ``ray.init``),
    ``dashboard`` (job server URL), ``serve`` (HTTP URL), ``token_path``, ``temp_dir``, ``nodes``
    (``[{node_id, gpus, cpus, head}]``).

    Raises:
        ValueError: the cluster is already up, or one of its ports is taken (the message names the field).
        RuntimeError: a ``ray start`` failed or the nodes did not join in ``timeout_s`` (what was started is stopped).
    """
    temp = Path(cfg.temp_dir)
    if _alive(cfg.temp_dir, cfg.port):
        raise ValueError(f"a cluster is already up at port {cfg.port} (sphere-ray cluster down --port {cfg.port})")
    for name in ("port", "dashboard_port", "serve_port"):
        if not _port_free(getattr(cfg, name)):
            raise ValueError(f"{name} {getattr(cfg, name)} is in use; choose another with --{name}")
    temp.mkdir(parents=True, exist_ok=True)
    env = _env(_write_token(temp))
    try:
        _ray_start(_head_args(cfg), env, temp / "head.log")
        for i in range(cfg.workers):  # one at a time: ray start gives a raylet 30 s to register
            _ray_start(_worker_args(cfg, i), env, temp / f"worker-{i}.log")
        state = _connect_and_start_serve(cfg, env)
    except BaseException:
        down(cfg)
        raise
    (temp / "cluster.json").write_text(json.dumps(state, indent=2))
    return state


def down(cfg: FakeClusterConfig) -> int:
    """Stop every process of this cluster (SIGTERM, then SIGKILL after ``timeout_s``); return how many."""
    import psutil

    procs = _cluster_procs(cfg.temp_dir, cfg.port)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=min(cfg.timeout_s, 30.0))
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)
    (Path(cfg.temp_dir) / "cluster.json").unlink(missing_ok=True)
    return len(procs)


def read_state(cfg: FakeClusterConfig) -> dict[str, Any] | None:
    """The state written by :func:`up`, or ``None`` when no state file is there (nothing is contacted)."""
    path = Path(cfg.temp_dir) / "cluster.json"
    return json.loads(path.read_text()) if path.exists() else None


def status(cfg: FakeClusterConfig) -> dict[str, Any] | None:
    """:func:`read_state` plus ``alive`` and, when alive, every Serve app's ``replicas`` (their ``stats()``)."""
    state = read_state(cfg)
    if state is None:
        return None
    alive = _alive(cfg.temp_dir, cfg.port)
    replicas = _child({"cmd": "replicas", "address": state["address"]}, state["token_path"], 120) if alive else {}
    return {**state, "alive": alive, "replicas": replicas}


def cluster_env(state: dict[str, Any]) -> dict[str, str]:
    """What a client needs: ``RAY_ADDRESS`` (the job server), ``RAY_AUTH_MODE`` and ``RAY_AUTH_TOKEN_PATH``."""
    return {"RAY_ADDRESS": state["dashboard"], "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["token_path"]}


def _write_token(temp: Path) -> Path:
    path = temp / "auth_token"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path


def _env(token: Path) -> dict[str, str]:
    """The nodes' environment: this token, and this interpreter first on PATH (``python`` in a job's entrypoint)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # Every node's processes share this machine's cores: Serve's proxy gets longer than 5 s to start, and a
    # router's queue-length probe longer than 0.1 s to answer (a missed probe moves a request off its replica).
    # A raylet would prestart one idle worker per logical CPU for the first driver: fake nodes claim many.
    return {**env, "PATH": path, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_prestart_worker_first_driver": "0",
            "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
            "RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "1.0",
            "RAY_SERVE_MAX_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "5.0"}  # fmt: skip


def _ray() -> str:
    """The ``ray`` script next to this interpreter (the cluster runs the same environment as the caller)."""
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else shutil.which("ray") or "ray"


def _common_args(cfg: FakeClusterConfig) -> list[str]:
    return [
        "--min-worker-port=0", "--max-worker-port=0", f"--dashboard-agent-listen-port={_free_port()}",
        f"--object-store-memory={cfg.object_store_mib * 2**20}", "--disable-usage-stats",
    ]  # fmt: skip


def _head_args(cfg: FakeClusterConfig) -> list[str]:
    return [
        _ray(), "start", "--head", f"--port={cfg.port}", f"--temp-dir={cfg.temp_dir}", "--node-ip-address=127.0.0.1",
        f"--num-cpus={cfg.head_cpus}", "--num-gpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        f"--dashboard-port={cfg.dashboard_port}", f"--ray-client-server-port={_free_port()}", *_common_args(cfg),
    ]  # fmt: skip


def _worker_args(cfg: FakeClusterConfig, index: int) -> list[str]:
    return [
        _ray(), "start", f"--address=127.0.0.1:{cfg.port}", "--node-ip-address=127.0.0.1",
        f"--num-cpus={cfg.worker_cpus}", f"--num-gpus={cfg.gpus_per_worker}",
        f"--resources={json.dumps({f'fake_node_{index}': 1})}", *_common_args(cfg),
    ]  # fmt: skip


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log.info("%s", " ".join(args))
    out = log_path.open("w")
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _ray_start(args: list[str], env: dict[str, str], log_path: Path, timeout_s: float = 300.0) -> None:
    proc = _spawn(args, env, log_path)
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        raise RuntimeError(f"ray start did not return in {timeout_s:.0f} s; see {log_path}") from e
    if rc != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ray start failed (exit {rc}); {log_path}:\n{tail}")


def _connect_and_start_serve(cfg: FakeClusterConfig, env: dict[str, str]) -> dict[str, Any]:
    args = {"cmd": "join", "address": f"127.0.0.1:{cfg.port}", "nodes": cfg.workers + 1,
            "serve_port": cfg.serve_port, "timeout_s": cfg.timeout_s}  # fmt: skip
    nodes = _child(args, env["RAY_AUTH_TOKEN_PATH"], cfg.timeout_s + 120)
    return {
        "address": f"127.0.0.1:{cfg.port}", "dashboard": f"http://127.0.0.1:{cfg.dashboard_port}",
        "serve": f"http://127.0.0.1:{cfg.serve_port}", "token_path": env["RAY_AUTH_TOKEN_PATH"],
        "temp_dir": cfg.temp_dir, "config": dataclasses.asdict(cfg), "nodes": nodes,
    }  # fmt: skip


def _child(args: dict[str, Any], token_path: str, timeout_s: float) -> Any:
    """Run ``args["cmd"]`` in a child process connected to the cluster (this one may hold another Ray)."""
    run = subprocess.run(
        [sys.executable, "-m", "sphere_ray.cluster", json.dumps(args)], env=_env(Path(token_path)),
        capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"fake cluster {args['cmd']} failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _join_and_serve(address: str, nodes: int, serve_port: int, timeout_s: float) -> list[dict[str, Any]]:
    """(Child process) wait until ``nodes`` nodes are alive, start Serve head-only; return the nodes."""
    import ray
    from ray import serve

    connect_ray(address, quiet=True)
    deadline = time.monotonic() + timeout_s
    while len(alive := [n for n in ray.nodes() if n["Alive"]]) < nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(alive)} of {nodes} nodes joined in {timeout_s:.0f} s")
        time.sleep(1.0)
    for attempt in range(3):  # a proxy that misses its readiness check is killed; start again
        try:
            serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": serve_port})
            break
        except ray.exceptions.RayError:
            if attempt == 2:
                raise
            time.sleep(5.0)
    return [
        {"node_id": n["NodeID"], "gpus": n["Resources"].get("GPU", 0), "cpus": n["Resources"].get("CPU", 0),
         "head": "node:__internal_head__" in n["Resources"]}
        for n in alive
    ]  # fmt: skip


def _cluster_procs(temp_dir: str, port: int) -> list[Any]:
    """The processes of this user whose command line names the temp dir or the GCS port, with all their children."""
    import psutil

    marks = re.compile(rf"{re.escape(temp_dir)}/|127\.0\.0\.1:{port}(?!\d)|--gcs_server_port={port}(?!\d)")
    roots: dict[int, Any] = {}
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            if proc.pid == os.getpid() or proc.info["uids"].real != os.getuid():
                continue
            line = " ".join(proc.info["cmdline"] or ())
            if marks.search(line):
                roots[proc.pid] = proc
        except psutil.Error:
            continue
    found = dict(roots)
    for proc in roots.values():
        try:
            found.update({c.pid: c for c in proc.children(recursive=True) if c.pid != os.getpid()})
        except psutil.Error:
            continue
    return list(found.values())


def _alive(temp_dir: str, port: int) -> bool:
    """The cluster's GCS server is running."""
    import psutil

    for proc in _cluster_procs(temp_dir, port):
        try:
            if proc.name() == "gcs_server":
                return True
        except psutil.Error:
            continue
    return False


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` (connections of a stopped cluster left in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replicas(address: str) -> dict[str, list[dict[str, Any]]]:
    """(Child process) every Serve app's replicas: ``[{replica, node_id, sessions, ...stats}]``."""
    from ray import serve

    from sphere_ray.serving.launch import replica_stats

    connect_ray(address, quiet=True)
    try:
        apps = serve.status().applications
    except Exception:  # Serve not started (yet)
        return {}
    return {app: list(replica_stats(app).values()) for app, info in apps.items() if info.status == "RUNNING"}


if __name__ == "__main__":  # the child of _child
    a = json.loads(sys.argv[1])
    if a["cmd"] == "join":
        out = _join_and_serve(a["address"], a["nodes"], a["serve_port"], a["timeout_s"])
    else:
        out = _replicas(a["address"])
    sys.stdout.write(json.dumps(out) + "\n")
