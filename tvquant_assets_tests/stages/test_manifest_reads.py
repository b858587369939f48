"""A stage's code version hashes only the manifest sections it declares (``code_versions.SECTIONS``): safe only
if the stage reads nothing else. Each stage is run here on dates of the shared run (a rebalance date, the
first partition with its warm-up from the source, the Covid crash) with the manifest behind a recorder that
notes every top-level field read, through a context of its own (nothing cached by an earlier stage), in
this process (no workers). Every field a stage reads must be in its declared sections."""

import shutil
import types

import pandas as pd
import pytest
from pydantic import BaseModel

from tvquant_assets.defs.checks import CHECKS, evaluate
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import assets_of
from tvquant_assets.stages.code_versions import SECTIONS, covered
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_stage

EVERYTHING = "*"  # a read of the whole manifest (its hash, a dump, a comparison)


class Recorded:
    """Forwards to a manifest (or a part of it at ``path``) and adds to ``reads`` the path of every value read
    that is not itself a config object (those come back recorded too: ``tournament`` alone is no read,
    ``tournament.adaptive.map`` is). Properties and methods of our config classes run with this object as
    ``self``, so their reads count too; anything else (a dump, a copy, a hash, an equality, iteration)
    counts as reading everything under ``path``."""

    def __init__(self, model: BaseModel, reads: set[str], path: str = "") -> None:
        object.__setattr__(self, "_real", model)
        object.__setattr__(self, "_reads", reads)
        object.__setattr__(self, "_path", path)

    def _whole(self):
        object.__getattribute__(self, "_reads").add(object.__getattribute__(self, "_path") or EVERYTHING)
        return object.__getattribute__(self, "_real")

    @property
    def __class__(self):  # isinstance(recorded, TheConfigClass) holds
        return type(object.__getattribute__(self, "_real"))

    def __getattr__(self, name: str):
        real, reads = object.__getattribute__(self, "_real"), object.__getattribute__(self, "_reads")
        path = ".".join(filter(None, [object.__getattribute__(self, "_path"), name]))
        cls = type(real)
        if name in cls.model_fields:
            parts = path.split(".")
            reads.difference_update(f"?{'.'.join(parts[:i])}" for i in range(1, len(parts)))  # traversed
            value = getattr(real, name)
            if isinstance(value, BaseModel):  # passed along whole unless something under it is read
                reads.add(f"?{path}")
                return Recorded(value, reads, path)
            reads.add(path)
            return value
        own = next((k.__dict__[name] for k in cls.__mro__ if name in k.__dict__
                    and k.__module__.startswith("tvquant_assets")), None)
        if isinstance(own, property):
            return own.fget(self)
        if isinstance(own, types.FunctionType):
            return types.MethodType(own, self)
        return getattr(self._whole(), name)

    def __setattr__(self, name, value):
        raise AttributeError(f"the manifest is read-only here ({name})")

    def __eq__(self, other):
        return self._whole() == (object.__getattribute__(other, "_real") if isinstance(other, Recorded) else other)

    def __hash__(self):
        return hash(self._whole())

    def __iter__(self):
        return iter(self._whole())

    def __repr__(self):
        return repr(self._whole())

    def __reduce__(self):
        raise TypeError("a recorded manifest does not leave this process")


class RecordingContext(RunContext):
    """A run context whose manifest records reads; its manifest hash (sealed by the audit) reads everything."""

    def __init__(self, manifest: Manifest, lake: Lake, reads: set[str]) -> None:
        self._reads = reads
        super().__init__(manifest, lake)
        self.manifest = Recorded(manifest, reads)
        reads.clear()  # the constructor's own hash is not a stage's read

    @property
    def manifest_hash(self) -> str:
        self._reads.add(EVERYTHING)
        return self._manifest_hash

    @manifest_hash.setter
    def manifest_hash(self, value: str) -> None:
        self._manifest_hash = value


DATES = ["2020-02-03", "2020-02-04", "2020-03-02", "2020-03-16", "2020-03-17"]


@pytest.fixture(scope="module")
def recorded(sp500_it_run, tmp_path_factory):
    """``{stage: fields read}`` over ``DATES`` (on a copy of the shared lake: the audit appends)."""
    root = tmp_path_factory.mktemp("reads") / "lake"
    shutil.copytree(sp500_it_run["lake_root"], root)
    mp = pytest.MonkeyPatch()
    mp.setenv("TVQUANT_WORKERS", "1")
    out = {}
    try:
        for stage in assets_of(sp500_it_run["manifest"]):
            reads: set[str] = set()
            ctx = RecordingContext(sp500_it_run["manifest"], Lake.open(str(root)), reads)
            dates = [pd.Timestamp(d) for d in DATES]
            run_stage(ctx, stage, dates)
            for name, (checked, *_) in CHECKS.items():  # its checks: their thresholds decide a re-run too
                if checked == stage:
                    evaluate(ctx.manifest, ctx.lake, name, dates)
            out[stage] = {r.lstrip("?") for r in reads}
    finally:
        mp.undo()
    return out


def outside(recorded, sections) -> dict[str, list[str]]:
    """``{stage: reads outside its declaration}`` (undeclared stages hash the whole manifest)."""
    out = {}
    for stage, reads in recorded.items():
        declared = sections.get(stage)
        extra = sorted(r for r in reads if declared is not None and not covered(r, declared))
        if extra:
            out[str(stage)] = extra
    return out


def test_every_stage_reads_only_its_declared_sections(recorded):
    assert not outside(recorded, SECTIONS)
    assert recorded["audit"] >= {EVERYTHING}  # the audit seals the manifest hash
    assert {"tournament.book", "estimation.lookback"} <= recorded["estimation"]
    assert "tournament.adaptive" in recorded["regime"]  # handed to the regime detector whole


def test_a_missing_declaration_is_caught(recorded):
    """The recorder catches a read outside the declaration: a leaf, a config object handed on whole."""
    wrong = {**SECTIONS, "estimation": tuple(p for p in SECTIONS["estimation"] if p != "tournament.book"),
             "regime": tuple(p for p in SECTIONS["regime"] if p != "tournament.adaptive")}
    assert outside(recorded, wrong) == {"estimation": ["tournament.book"], "regime": ["tournament.adaptive"]}
