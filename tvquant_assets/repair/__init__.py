"""Price repair: re-fetch bad partitions, fill short gaps, exclude what cannot be filled (no Dagster here).

``records`` stores the decisions and applies them (the catalog and prices stages use it on every run);
``planning`` decides them from freshly fetched bars (the data_repair job's catalog step)."""

from tvquant_assets.repair.planning import RepairOutcome, plan, plan_and_record, run_repair
from tvquant_assets.repair.records import (
    REPAIRS_FILE,
    RUN_TAG,
    RepairRecords,
    apply_to_catalog,
    apply_to_prices,
    load_records,
    records_path,
    save_records,
)

__all__ = ["REPAIRS_FILE", "RUN_TAG", "RepairRecords", "apply_to_catalog", "apply_to_prices", "load_records",
           "plan", "plan_and_record", "records_path", "save_records", "RepairOutcome", "run_repair"]
