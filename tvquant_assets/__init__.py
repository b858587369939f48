"""tvquant: manifest-driven, point-in-time portfolio decisions as Dagster assets."""

from tvquant_assets.determinism import pin_env as _pin_env

__version__ = "0.1.0"
_pin_env()  # one BLAS thread before numpy loads: reruns are bit-for-bit identical
