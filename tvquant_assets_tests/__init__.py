"""tvquant's tests. The package is imported first (before conftest's pandas loads numpy's OpenBLAS) so the
BLAS pinning of ``tvquant_assets.determinism`` applies to every test, as it does to every command."""

import tvquant_assets  # noqa: F401
