"""Lineage: which lake partitions each stage reads for D (from its ``StageSpec``), their hashes, and the
ledger payload that seals a date."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

import pandas as pd

from tvquant_assets.calendar import manifest_dates, previous_dates
from tvquant_assets.provenance import environment
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.spec import StageSpec


def input_partitions(ctx: RunContext, spec: StageSpec, d: pd.Timestamp) -> dict[str, list[pd.Timestamp]]:
    """The lake partitions ``spec``'s stage reads to compute date ``d``, per asset: its same-date upstreams,
    the trailing price window, the decision a tournament carries, the decisions and closes a backtest
    stitches. Bars before the manifest's first partition come from the source (pinned by the manifest)."""
    m, d = ctx.manifest, pd.Timestamp(d)
    parts = {u: [d] for u in spec.upstream}
    if spec.previous and d > pd.Timestamp(m.start):
        prev = previous_dates(m, d, 1)[0]
        parts.update({p: [prev] for p in spec.previous})
    if spec.price_window:
        parts["prices"] = manifest_dates(m, ctx.window_start(d), d)
    if spec.carries_decision and d not in ctx.rebalance_set(d):
        prev = previous_dates(m, d, 1)[0]
        if prev >= pd.Timestamp(m.start):
            parts[spec.name] = [prev]
    if spec.book and d >= pd.Timestamp(m.backtest_start):
        start = pd.Timestamp(m.backtest_start)
        decided = {start, d, *(r for r in ctx.rebalance_set(d) if start < r <= d)}
        parts["tournament"] = sorted(decided)
        parts["prices"] = manifest_dates(m, start, d)
    return parts


def partitions_digest(labelled: list[str]) -> str:
    """One hash over ``YYYY-MM-DD:df_hash`` labels (a single partition: its df_hash itself)."""
    if len(labelled) == 1:
        return labelled[0].split(":", 1)[1]
    return hashlib.sha256("\n".join(labelled).encode("ascii")).hexdigest()


def input_hashes(ctx: RunContext, dates, specs: Iterable[StageSpec], verify: bool = False
                 ) -> dict[pd.Timestamp, dict[str, dict[str, dict]]]:
    """For every date and stage of ``specs``, per input asset: ``{"dates": "first..last", "n", "hash"}`` over
    the df_hashes of the partitions ``input_partitions`` names (missing partitions are left out; ``verify``:
    hashed from the files' content rather than the hash stored at write)."""
    dates = [pd.Timestamp(d) for d in dates]
    specs = list(specs)
    wanted = {d: {s.name: input_partitions(ctx, s, d) for s in specs} for d in dates}
    spans: dict[tuple, list[pd.Timestamp]] = {}  # every span once: book stages share theirs
    for per_stage in wanted.values():
        for parts in per_stage.values():
            for asset, ds in parts.items():
                spans.setdefault(_span_key(asset, ds), ds)
    union: dict[str, set[pd.Timestamp]] = {}
    for (asset, *_), ds in spans.items():
        union.setdefault(asset, set()).update(ds)
    def hashes(asset, ds):
        if verify:  # from the content
            return {d: h for d, (_, h) in ctx.lake.read_many(ctx.name, asset, ds, missing_ok=True, verify=True).items()}
        return ctx.lake.hashes(ctx.name, asset, ds, missing_ok=True)

    labels = {asset: {d: f"{d:%Y-%m-%d}:{h}" for d, h in hashes(asset, sorted(ds)).items()}
              for asset, ds in union.items()}
    memo = _span_records(spans, labels)
    out: dict[pd.Timestamp, dict[str, dict[str, dict]]] = {}
    for d, per_stage in wanted.items():
        out[d] = {stage: {asset: memo[_span_key(asset, ds)] for asset, ds in parts.items()}
                  for stage, parts in per_stage.items()}
    return out


def _span_key(asset: str, ds: list[pd.Timestamp]) -> tuple:
    """A span of partitions (``input_partitions`` names none empty) by its asset, ends and length."""
    return (asset, ds[0], ds[-1], len(ds))


def _span_records(spans: dict[tuple, list[pd.Timestamp]], labels: dict[str, dict[pd.Timestamp, str]]
                  ) -> dict[tuple, dict]:
    """``{"dates", "n", "hash"}`` of every span. The spans of one asset that start on the same date and
    extend one another (a book's closes since ``backtest.start``, one more date each day) are hashed as one
    growing digest: each partition's label is hashed once, not once per later date."""
    out: dict[tuple, dict] = {}
    by_start: dict[tuple, list[tuple]] = {}
    for key, ds in spans.items():
        by_start.setdefault((key[0], ds[0]), []).append(key)
    for (asset, _), keys in by_start.items():
        known = labels.get(asset, {})
        keys.sort(key=lambda k: k[3])
        grown: list[pd.Timestamp] = []  # the dates hashed so far into ``digest``
        digest, found = hashlib.sha256(), []
        for key in keys:
            ds = spans[key]
            if grown and ds[:len(grown)] == grown:  # extends the last span: hash the new dates only
                for x in ds[len(grown):]:
                    label = known.get(x)
                    if label is not None:
                        digest.update(("\n" + label if found else label).encode("ascii"))
                        found.append(label)
            else:
                found = [known[x] for x in ds if x in known]
                digest = hashlib.sha256("\n".join(found).encode("ascii"))
            grown = list(ds)
            span = f"{ds[0]:%Y-%m-%d}" if len(ds) == 1 else f"{ds[0]:%Y-%m-%d}..{ds[-1]:%Y-%m-%d}"
            if not found:
                value = None
            elif len(found) == 1:
                value = partitions_digest(found)
            else:
                value = digest.hexdigest()
            out[key] = {"dates": span, "n": len(found), "hash": value}
    return out


# Fields of a ledger payload that say when and by whom, not what: an identical re-run ignores them.
CIRCUMSTANCE = ("run_id", "timestamp", "supersedes")


def audit_payload(ctx: RunContext, d: pd.Timestamp, outputs: dict[str, str], inputs: dict[str, dict]) -> dict:
    """The ledger payload for date ``d``: every stage's output df_hash and input hashes, the manifest
    hash, the environment and code version, run id and timestamp."""
    env = ctx.environment or environment()
    return {
        "manifest": ctx.name,
        "date": d.strftime("%Y-%m-%d"),
        "stages": {s: {"output": outputs.get(s), "inputs": inputs.get(s, {})} for s in sorted(outputs)},
        "manifest_hash": ctx.manifest_hash,
        "environment": {"uv_lock_hash": env.get("uv_lock_hash"), "python": env.get("python"),
                        "packages": env.get("packages"), "blas_threads": env.get("blas_threads")},
        "git": {"sha": env.get("git_sha"), "dirty": env.get("git_dirty")},
        "run_id": ctx.run_id,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "supersedes": None,
    }


def output_hashes(payload: dict) -> dict[str, str]:
    """``{stage: output df_hash}`` of a ledger payload (also reads the first format, ``{stage: hash}``)."""
    return {s: (v.get("output") if isinstance(v, dict) else v) for s, v in (payload.get("stages") or {}).items()}


def same_record(prior: dict, payload: dict) -> bool:
    """True when ``payload`` says what ``prior`` said (every field but the circumstances)."""
    return set(prior) == set(payload) and all(prior[k] == v for k, v in payload.items() if k not in CIRCUMSTANCE)
