"""The command line both console scripts share: --config FILE, --set KEY=VALUE, and shortcut flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from shared.config import Config, ConfigError, load_config
from shared.redact import redact

EPILOG = "Every config key can also be set as AKIDB_<SECTION>__<KEY> or with --set section.key=value."


class _Parser(argparse.ArgumentParser):
    """argparse, whose errors quote the bad value: redacted, as a config error's are."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, redact(f"{self.prog}: error: {message}\n"))


class CommandLine:
    """A console script's arguments, turned into its config (defaults < YAML < env < shortcuts and --set)."""

    def __init__(self, prog: str, description: str) -> None:
        self.parser = _Parser(prog=prog, description=description, epilog=EPILOG)
        self.parser.add_argument("--config", metavar="FILE", help="YAML config file (see README: Configuration)")
        self.parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key")
        self._shortcuts = self.parser.add_argument_group("shortcuts (each sets one config key)")
        self._keys: dict[str, str] = {}

    def shortcut(self, flag: str, key: str, **kwargs: Any) -> None:
        """A flag that sets one config key: `--port 8081` is `--set server.port=8081`."""
        self._keys[self._shortcuts.add_argument(flag, **kwargs).dest] = key

    def config(self, argv: Sequence[str], env: Mapping[str, str]) -> Config:
        """Parse argv and build the config; a bad argument or config value exits 2 saying why."""
        args = self.parser.parse_args(argv)
        given = {key: getattr(args, dest) for dest, key in self._keys.items()}
        # --set comes last so an explicit key=value wins over a shortcut for the same key.
        overrides = [f"{key}={value}" for key, value in given.items() if value is not None] + list(args.set)
        try:
            return load_config(args.config, env, overrides)
        except ConfigError as exc:
            self.parser.exit(2, f"{self.parser.prog}: config error: {exc}\n")
