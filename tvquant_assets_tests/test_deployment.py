"""The deployment files parse and the instance configs validate with Dagster's own schema (no Docker
daemon here, so compose itself cannot run)."""

from pathlib import Path

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
