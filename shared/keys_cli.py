"""`akidb-keys`: make an API key (printed once, with the config line to paste) or a CURVE key pair."""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from pathlib import Path

from shared.config import SCOPES, key_digest
from shared.redact import RAW_KEY_PREFIX as KEY_PREFIX

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="akidb-keys", description="Make AkiDB keys (see docs/security.md).")
    sub = p.add_subparsers(dest="kind", required=True)
    api = sub.add_parser("api", help="a new API key for HTTP, the OpenAI route and gRPC")
    api.add_argument("--name", required=True, type=_name, help="the name logs show for this key (e.g. app)")
    api.add_argument(
        "--scopes", default="read", type=_scopes, help=f"comma-separated: {','.join(SCOPES)} (default read)"
    )
    api.add_argument(
        "--collections",
        type=_patterns,
        help="comma-separated glob patterns (e.g. 'team-a-*'): the key touches and sees only collections whose "
        "names match (default: every collection)",
    )
    curve = sub.add_parser("curve", help="a CURVE key pair for a worker or the gateway (ZeroMQ)")
    curve.add_argument("--name", required=True, type=_name, help="file stem: NAME.key (public), NAME.key_secret")
    curve.add_argument("--dir", default=".", type=Path, help="folder for the two files (default: here)")
    return p.parse_args(argv)


def _name(value: str) -> str:
    if not NAME.match(value):
        raise argparse.ArgumentTypeError(f"{value!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return value


def _scopes(value: str) -> list[str]:
    scopes = list(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    if not scopes or any(s not in SCOPES for s in scopes):
        raise argparse.ArgumentTypeError(f"{value!r}: a comma-separated list of {', '.join(SCOPES)}")
    return scopes


def _patterns(value: str) -> list[str]:
    patterns = list(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    if not patterns:
        raise argparse.ArgumentTypeError(f"{value!r}: one or more comma-separated glob patterns, e.g. 'team-a-*'")
    return patterns


def make_api_key(name: str, scopes: list[str], collections: list[str] | None = None) -> tuple[str, dict[str, object]]:
    """A new random key and the record the gateway's config holds for it (its hash, never the key)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record: dict[str, object] = {"name": name, "sha256": key_digest(key), "scopes": scopes}
    if collections is not None:
        record["collections"] = collections
    return key, record


def make_curve_pair(name: str, folder: Path) -> tuple[Path, Path]:
    """NAME.key (public) and NAME.key_secret (0600) in `folder`; FileExistsError rather than overwrite."""
    from shared.curve import create_pair  # here, so `akidb-keys api` does not load libzmq

    return create_pair(folder, name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.kind == "api":
        key, record = make_api_key(args.name, args.scopes, args.collections)
        scopes = ", ".join(args.scopes)
        # Patterns quoted: a bare `*` starts a YAML alias.
        limit = f", collections: [{', '.join(json.dumps(p) for p in args.collections)}]" if args.collections else ""
        print(f"API key {args.name!r} (shown once: the gateway keeps only its SHA-256):\n\n  {key}\n")
        print("Add it to the gateway's config under auth.keys:\n")
        print(f"  - {{name: {args.name}, sha256: '{record['sha256']}', scopes: [{scopes}]{limit}}}\n")
        print("or as one line of auth.keys_file:\n")
        print(f"  {json.dumps(record)}")
        return 0
    try:
        public, secret = make_curve_pair(args.name, args.dir)
    except FileExistsError as exc:
        print(
            f"akidb-keys: {exc.filename} exists; keys are never overwritten (remove it first, or pick another --name)",
            file=sys.stderr,
        )
        return 1
    print(f"public key: {public}\nsecret key: {secret} (mode 0600: keep it on this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
