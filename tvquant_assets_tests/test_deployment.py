"""The deployment files parse and the instance configs validate with Dagster's own schema (no Docker
daemon here, so compose itself cannot run)."""

from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_the_four_services_with_loopback_webserver():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "daemon"}
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    assert "healthcheck" in services["postgres"]
    for name in ("webserver", "daemon", "user_code"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "lake:/data/lake" in services[name]["volumes"]
    assert "tvquant_assets.definitions" in services["user_code"]["command"]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["port"] == 4000


def test_compose_instance_config_validates(tmp_path, monkeypatch):
    for var in ("DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"):
        monkeypatch.setenv(var, "x")
    (tmp_path / "dagster.yaml").write_text((ROOT / "deploy" / "compose" / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert "postgres" in config["storage"]


def test_local_instance_config_is_the_default_and_batches_events(tmp_path, monkeypatch):
    from dagster import DagsterInstance

    from tvquant_assets.defs.storage import BatchedSqliteEventLogStorage
    from tvquant_assets.runner import ensure_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = ensure_dagster_home()
    assert (home / "dagster.yaml").read_text() == (ROOT / "dagster.yaml").read_text()
    config, _ = dagster_instance_config(str(home))
    assert config["event_log_storage"]["class"] == "BatchedSqliteEventLogStorage"
    instance = DagsterInstance.get()
    assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
    assert Path(instance.event_log_storage._base_dir) == home / "history" / "runs"


def test_compose_runs_each_run_in_a_container_with_limits_and_env_secrets(tmp_path, monkeypatch):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_docker import DockerRunLauncher

    text = (ROOT / "deploy" / "compose" / "dagster.yaml").read_text()
    for var in ("DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"):
        monkeypatch.setenv(var, "x")
    (tmp_path / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema validation
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    launcher = DockerRunLauncher.from_config_value(None, config["run_launcher"]["config"])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert launcher.networks == [compose["networks"]["tvquant"]["name"]]
    assert f"{compose['volumes']['lake']['name']}:/data/lake" in launcher.container_kwargs["volumes"]
    secrets = {"DAGSTER_POSTGRES_PASSWORD", "TVQUANT_TV_SESSIONID"}
    assert secrets <= set(launcher.env_vars)  # run containers get secrets from the environment only
    env = compose["x-dagster-env"]
    assert all(env[s].startswith("${") for s in secrets)  # compose passes them through from .env
    assert config["run_coordinator"]["class"] == QueuedRunCoordinator.__name__
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 4
    limits = {lim["key"]: lim for lim in runs["tag_concurrency_limits"]}
    assert limits["tvquant/repair"]["limit"] == 1 and limits["tvquant/manifest"]["limit"] == 2
    assert config["concurrency"]["pools"]["default_limit"] == 2
    assert compose["services"]["user_code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == "tvquant:latest"
    assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"]["daemon"]["volumes"]
    assert "password" not in text.replace("password:\n        env:", "")  # no literal secret in the file


def test_no_plaintext_secrets_and_nothing_published_beyond_loopback():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    values = yaml.safe_load((ROOT / "deploy" / "k8s" / "values.yaml").read_text())
    flat = yaml.safe_dump(values)
    assert "password:" not in flat.lower()
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"


def test_k8s_values_use_the_k8s_run_launcher_and_our_code_location():
    values = yaml.safe_load((ROOT / "deploy" / "k8s" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["envSecrets"] == [{"name": "tvquant-secrets"}]
    assert launcher["runK8sConfig"]["containerConfig"]["resources"]["limits"]["memory"] == "6Gi"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "tvquant_assets.definitions"]
    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == "QueuedRunCoordinator"
    assert queue["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == 8
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"]
    executor = yaml.safe_load((ROOT / "deploy" / "k8s" / "k8s_job_executor.yaml").read_text())
    assert executor["execution"]["config"]["env_secrets"] == ["tvquant-secrets"]
    assert executor["execution"]["config"]["max_concurrent"] == 4


def test_webserver_binds_loopback_by_default():
    from tvquant_assets import cli

    source = Path(cli.__file__).read_text()
    assert '"-h", "127.0.0.1"' in source and "0.0.0.0" not in source  # tvquant ui: loopback only


def test_the_image_records_the_git_sha_it_was_built_from(tmp_path, monkeypatch):
    """An image holds no .git: the ledger's provenance reads the sha passed at build time."""
    from tvquant_assets import provenance
    from tvquant_assets.defs.launch import LOCATION_NAME

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["user_code"]["build"]["args"]["GIT_SHA"] == "${TVQUANT_GIT_SHA:-}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ARG GIT_SHA=""' in dockerfile and "ENV TVQUANT_GIT_SHA=$GIT_SHA" in dockerfile
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)  # like /opt/tvquant in the image: no .git
    monkeypatch.setenv(provenance.GIT_SHA_ENV, "0123abc")
    assert provenance.environment.__wrapped__()["git_sha"] == "0123abc"
    monkeypatch.delenv(provenance.GIT_SHA_ENV)
    assert provenance.environment.__wrapped__()["git_sha"] is None
    # every deployment loads the code location CLI runs record
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["location_name"] == LOCATION_NAME
    values = yaml.safe_load((ROOT / "deploy" / "k8s" / "values.yaml").read_text())
    assert values["dagster-user-deployments"]["deployments"][0]["name"] == LOCATION_NAME


def test_compose_and_kubernetes_run_the_same_chunked_queued_configuration(tmp_path, monkeypatch):
    """Both deployments: PostgreSQL storage, the queued run coordinator with the same tag limits, one
    container or pod per run, and the same backfill chunk size in the code server and in every run (the run
    workers must build the asset graph the daemon planned the backfill with)."""
    from tvquant_assets.defs import chunks

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-dagster-env"]
    chunk = env[chunks.MAX_PARTITIONS_ENV]
    assert chunk == "${TVQUANT_MAX_PARTITIONS_PER_RUN:-250}"
    for name in ("user_code", "webserver", "daemon"):
        service_env = compose["services"][name]["environment"]
        assert service_env.get(chunks.MAX_PARTITIONS_ENV) == chunk, name
    for var in ("DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"):
        monkeypatch.setenv(var, "x")
    (tmp_path / "dagster.yaml").write_text((ROOT / "deploy" / "compose" / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert chunks.MAX_PARTITIONS_ENV in config["run_launcher"]["config"]["env_vars"]  # run containers chunk too
    compose_limits = config["concurrency"]["runs"]["tag_concurrency_limits"]

    values = yaml.safe_load((ROOT / "deploy" / "k8s" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    k8s_env = {e["name"]: e["value"] for e in deployment["env"]}
    assert k8s_env[chunks.MAX_PARTITIONS_ENV] == "250"  # the compose default
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run pods get the same env
    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["enabled"] and queue["type"] == "QueuedRunCoordinator"
    k8s_limits = queue["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert [(x["key"], x["limit"]) for x in k8s_limits] == [(x["key"], x["limit"]) for x in compose_limits]
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and config["run_launcher"]["class"] == "DockerRunLauncher"
    assert values["postgresql"]["postgresqlDatabase"] and "postgres" in config["storage"]

    monkeypatch.setenv(chunks.MAX_PARTITIONS_ENV, "250")
    policy = chunks.backfill_policy()
    assert policy.max_partitions_per_run == 250
    assert [d.asset_key.path[-1] for d in chunks.ordering_deps("m", "tournament")] == ["tournament"]
    assert chunks.ordering_deps("m", "scan") == []
    monkeypatch.setenv(chunks.MAX_PARTITIONS_ENV, "0")
    with pytest.raises(ValueError, match="TVQUANT_MAX_PARTITIONS_PER_RUN='0'"):
        chunks.backfill_policy()
    monkeypatch.delenv(chunks.MAX_PARTITIONS_ENV)
    assert chunks.backfill_policy().max_partitions_per_run is None and chunks.ordering_deps("m", "tournament") == []
