"""The Dagster layer: asset factory, checks, jobs, schedules, sensors, IO manager, storage.

Importing it turns off Dagster's preview, beta and supersession notices about the APIs tvquant uses on
purpose (partitioned asset checks, backfill policies, pools): every process that loads the definitions
(the CLI, ``dagster dev``'s code server, each run worker) printed them. Warnings raised while a stage
computes go to that run's log instead of the terminal (``run_warnings.py``).
"""

import warnings

from dagster import BetaWarning, PreviewWarning, SupersessionWarning

for _notice in (BetaWarning, PreviewWarning, SupersessionWarning):
    warnings.filterwarnings("ignore", category=_notice)
