"""The console scripts' shared command line: shortcuts, --set, --config, and exit 2 on a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.cli import CommandLine


@pytest.fixture
def cli() -> CommandLine:
    cli = CommandLine("akidb-test", "a test script")
    cli.shortcut("--port", "server.port", type=int, help="HTTP port")
    cli.shortcut("--data-dir", "storage.data_dir", metavar="DIR", help="data")
    return cli


def test_a_shortcut_sets_its_key_over_the_environment(cli: CommandLine) -> None:
    cfg = cli.config(["--port", "8081"], {"AKIDB_SERVER__PORT": "7000", "AKIDB_SERVER__HOST": "127.0.0.1"})
    assert (cfg.server.port, cfg.server.host) == (8081, "127.0.0.1")


def test_set_wins_over_a_shortcut_for_the_same_key(cli: CommandLine) -> None:
    cfg = cli.config(["--set", "server.port=9000", "--port", "8081", "--data-dir", "/tmp/x"], {})
    assert (cfg.server.port, cfg.storage.data_dir) == (9000, "/tmp/x")


def test_config_file_is_below_the_environment(cli: CommandLine, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 7001\n  host: 10.0.0.1\n")
    cfg = cli.config(["--config", str(path)], {"AKIDB_SERVER__PORT": "7002"})
    assert (cfg.server.port, cfg.server.host) == (7002, "10.0.0.1")


def test_a_bad_value_exits_2_naming_the_key(cli: CommandLine, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.config(["--set", "batching.max_batch_size=-1"], {})
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "akidb-test: config error: batching.max_batch_size: -1 is below the minimum of 1\n"
    )


def test_help_lists_config_set_and_the_shortcuts(cli: CommandLine) -> None:
    text = cli.parser.format_help()
    assert "--config FILE" in text and "--set KEY=VALUE" in text
    assert "shortcuts (each sets one config key):" in text and "--data-dir DIR" in text
    assert "AKIDB_<SECTION>__<KEY>" in text
