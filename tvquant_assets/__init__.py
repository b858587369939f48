"""tvquant: manifest-driven, point-in-time portfolio decisions as Dagster assets."""

__version__ = "0.1.0"
