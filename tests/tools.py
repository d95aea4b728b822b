# tests/tools.py
"""Debian tools some tests need: found on PATH, or skipped (failed under CI)."""
import os, shutil, pytest
def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("DRIFTLINE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is not installed; .ci/run installs it")
        pytest.skip(f"{name} is not installed (apt-get install it, or run .ci/run)")
    return path
