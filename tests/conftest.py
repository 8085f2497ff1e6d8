"""Session-wide set-up for every test directory."""

from __future__ import annotations

import pytest

from tests.support.processes import LogDir


@pytest.fixture(scope="session", autouse=True)
def child_logs_in_pytests_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Child processes' logs go under pytest's basetemp (the last few runs kept), never loose in /tmp."""
    LogDir.use(tmp_path_factory.mktemp("child-logs"))
