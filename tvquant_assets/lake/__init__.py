from tvquant_assets.lake.store import LAKE_ENV, Lake, atomic_write_bytes, date_key, default_lake_root

__all__ = ["LAKE_ENV", "Lake", "atomic_write_bytes", "date_key", "default_lake_root"]
