"""`marginguard check-config`: validate a configuration and show what marginguard would run with.

The effective configuration (file, then secret files, then environment, with `*_env` / `*_file` secrets
resolved and relative paths made absolute) is printed with every secret masked: safe to paste into a ticket.
Exit 0 when valid; otherwise one line on stderr naming the field, and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate a configuration file and print the effective settings with secrets masked",
        description=(
            "Load FILE the way `marginguard run` does (TOML, then secret files, then MARGINGUARD_* environment "
            "variables), validate it and print the result with every secret masked. Exit 2 on any problem."
        ),
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory of secret files (default: $MARGINGUARD_SECRETS_DIR or $CREDENTIALS_DIRECTORY)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the effective settings as one JSON document"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from daemon.app.settings import SettingsError, load_settings
    from daemon.app.settings_view import effective_config

    try:
        settings = load_settings(args.config, secrets_dir=args.secrets_dir)
    except SettingsError as error:
        for line in error.lines():  # every problem at once: one run to fix them all
            print(line, file=sys.stderr)
        return EXIT_INVALID
    config = effective_config(settings)
    if args.json:
        json.dump(config, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"# {args.config}: valid. Effective settings, secrets masked:\n")
        write_toml(config, sys.stdout)
    return EXIT_OK


def write_toml(config: dict[str, Any], out: TextIO) -> None:
    """A readable TOML rendering of the effective settings (tables after plain keys, as TOML requires)."""
    _write_table(config, [], out)


def _write_table(table: dict[str, Any], path: list[str], out: TextIO) -> None:
    plain = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_list(v) and v is not None}
    for key, value in plain.items():
        out.write(f"{_key(key)} = {_value(value)}\n")
    for key, value in table.items():
        if _is_table(value):
            if _has_plain_keys(value):  # a table holding only tables is implied by their headers
                out.write(f"\n[{'.'.join(_key(p) for p in [*path, key])}]\n")
            _write_table(value, [*path, key], out)
        elif _is_table_list(value):
            for item in value:
                out.write(f"\n[[{'.'.join(_key(p) for p in [*path, key])}]]\n")
                _write_table(item, [*path, key], out)


def _has_plain_keys(table: dict[str, Any]) -> bool:
    return any(not _is_table(v) and not _is_table_list(v) and v is not None for v in table.values())


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    # JSON's strings, numbers, booleans and arrays are valid TOML; an inline table is spelled differently.
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(value)
