"""Typed errors. Each message is one line that names the thing at fault and what to do."""


class TvquantError(Exception):
    """Base class for every error tvquant raises on purpose."""


class ConfigurationError(TvquantError):
    """What the manifest asks for cannot work (unknown symbol, engine, parameter): retrying will not help."""


class ManifestError(ConfigurationError):
    """A manifest file is missing, unreadable or invalid."""


class SourceError(TvquantError):
    """A data source cannot serve what was asked."""


class BadDataError(SourceError):
    """A source's input files are wrong (one line naming file, row and column); retrying cannot fix them."""


class LakeError(TvquantError):
    """The lake is missing a partition or holds an unreadable file."""


class EngineError(TvquantError):
    """An optimization engine failed to produce weights."""


class LedgerError(TvquantError):
    """The audit ledger is broken or cannot be appended to."""


class SimulatorError(TvquantError):
    """A backtest simulator cannot run what the manifest asks."""


class SourceConfigError(SourceError, ConfigurationError):
    """The source cannot serve what the manifest names (e.g. a symbol it does not have)."""


class RegistryError(ConfigurationError, ValueError):
    """A registry (sources, engines, simulators) has no entry of that name, or it takes no such parameter."""
