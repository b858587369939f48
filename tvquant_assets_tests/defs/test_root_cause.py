"""The CLI's last line names the real cause of a failed run: past Dagster's wrappers and "Exceeded
max_retries" to the error the step raised, with a blocking check's findings; configuration errors fail at
once instead of being retried; ``tvquant ui`` without the ``dagster`` command is one line."""

from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterInstance,
    MetadataValue,
    RetryPolicy,
    asset,
    asset_check,
    materialize,
)

from tvquant_assets.cli import main
from tvquant_assets.defs.policies import no_retry_on_configuration_errors
from tvquant_assets.errors import SourceConfigError
from tvquant_assets.runner import _first_failure

ROOT = Path(__file__).resolve().parents[2]


def _retries(instance, run_id):
    return [e for e in instance.all_logs(run_id)
            if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"]


def test_retried_errors_name_the_error_not_the_retry_count():
    @asset(retry_policy=RetryPolicy(max_retries=2, delay=0.01))
    def prices():
        raise ConnectionRefusedError("[Errno 111] Connection refused (scanner.tradingview.com)")

    with DagsterInstance.ephemeral() as instance:
        result = materialize([prices], instance=instance, raise_on_error=False)
        assert len(_retries(instance, result.run_id)) == 2
    line = _first_failure(result, "m")
    assert line == "m: step prices failed: ConnectionRefusedError: [Errno 111] Connection refused " \
                   "(scanner.tradingview.com)"
    assert "max_retries" not in line


def test_configuration_errors_are_not_retried_and_keep_their_text():
    @asset(retry_policy=RetryPolicy(max_retries=3, delay=0.01))
    def catalog():
        with no_retry_on_configuration_errors():
            raise SourceConfigError("universe.symbols: NOPE not in source bundled; fix the manifest")

    with DagsterInstance.ephemeral() as instance:
        result = materialize([catalog], instance=instance, raise_on_error=False)
        assert _retries(instance, result.run_id) == []
    assert _first_failure(result, "m") == \
        "m: step catalog failed: SourceConfigError: universe.symbols: NOPE not in source bundled; fix the manifest"


def test_a_blocking_check_failure_names_its_findings():
    @asset
    def prices():
        return 1

    @asset_check(asset=prices, blocking=True)
    def price_values():
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description="1 bad bar",
                                metadata={"findings": MetadataValue.json(["2020-03-04 MSFT: NaN close"])})

    @asset(deps=[prices])
    def scan():
        return 1

    result = materialize([prices, price_values, scan], instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert _first_failure(result, "m") == \
        "m: step prices_price_values failed: blocking asset check failed: price_values (2020-03-04 MSFT: NaN close)"


def test_cli_backfill_with_an_unknown_symbol_ends_with_the_cause(tmp_path, monkeypatch, capsys):
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text().replace("name: sp500_demo", "name: sp500_nope")
    text = text.replace("universe:\n", "universe:\n  symbols: [AAPL, AMD, BAC, NOPE, JPM, KO]\n", 1)
    path = tmp_path / "sp500_nope.yaml"
    path.write_text(text)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["backfill", "--manifest", str(path), "--start", "2020-03-02", "--end", "2020-03-03",
                 "--lake", str(tmp_path / "lake"), "--no-report", "--json"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("tvquant: error: sp500_nope: step ") and last.endswith(
        "SourceConfigError: universe.symbols: NOPE not in source bundled; fix the manifest"), last
    with DagsterInstance.get() as instance:
        run = instance.get_runs()[0]
        assert _retries(instance, run.run_id) == []  # failed at once, not after three backoffs


def test_ui_without_dagster_on_path_is_one_line(monkeypatch, capsys, tmp_path):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["ui"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tvquant: error: ui: the 'dagster' command is not on PATH; run 'uv run tvquant ui' from the "
                   "project, or activate its environment (.venv/bin)"]
    assert not (tmp_path / "home").exists()
