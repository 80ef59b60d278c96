"""Environment variables and secret files that would be ignored without a word are refused by name.

pydantic-settings reads `MARGINGUARD_<SECTION>__<KEY>` for the sections it knows and skips everything else, so
`MARGINGUARD_RULEZ__WARNING_DISTANCE=0.2` would leave the default in force while the operator believes it
changed. Every MARGINGUARD_* name must be a section (as JSON), `<section>__<key>`, the secrets directory, or a
variable that some `<name>_env` key of the configuration names.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from daemon.app.settings_errors import LIST_SECTIONS, SettingsError

ENV_PREFIX = "MARGINGUARD_"


def refuse_indexed_list_variables(environ: Mapping[str, str]) -> None:
    # pydantic-settings silently ignores MARGINGUARD_ACCOUNTS__0__API_KEY; an ignored credential is worse
    # than a refusal.
    for name in environ:
        upper = name.upper()
        for section in LIST_SECTIONS:
            if upper.startswith(f"{ENV_PREFIX}{section.upper()}__"):
                raise SettingsError(
                    f"environment {name}",
                    f"[[{section}]] entries cannot be set one key at a time; set {ENV_PREFIX}{section.upper()} "
                    "to the whole list as JSON, or point a <name>_env key in the file at your variable",
                )


def refuse_unknown_sections(names: Iterable[tuple[str, str]], sections: Collection[str]) -> None:
    """MARGINGUARD_RULEZ__WARNING_DISTANCE would be skipped without a word, leaving the default in force.

    `names` are (where, name) pairs: environment variables, or files in the secrets directory named like them.
    A misspelt key inside a known section is refused by the section itself."""
    for where, name in names:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or "__" not in upper:
            continue
        section = upper.removeprefix(ENV_PREFIX).split("__")[0].lower()
        if section not in sections:
            known = ", ".join(sections)
            raise SettingsError(where, f"unknown section {section!r} (known: {known})")


def refuse_stray_variables(
    environ: Mapping[str, str], sections: Collection[str], referenced: Iterable[str]
) -> None:
    """A MARGINGUARD_* variable is a whole section (as JSON), the secrets directory, or a secret that some
    `<name>_env` key names (MARGINGUARD_BINANCE_KEY); anything else (MARGINGUARD_LOG_LEVEL, a section's key
    without its section) would be silently ignored."""
    # MARK_TRACE: the benchmarks' opt-in trace (daemon/exchanges/mark_trace.py), read at import, not a setting.
    allowed = {f"{ENV_PREFIX}{name.upper()}" for name in (*sections, "SECRETS_DIR", "MARK_TRACE")}
    allowed |= {name.upper() for name in referenced}
    for name in environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and "__" not in upper and upper not in allowed:
            raise SettingsError(
                f"environment {name}",
                "not a marginguard setting (write MARGINGUARD_<SECTION>__<KEY>, e.g. "
                "MARGINGUARD_DAEMON__LOG_LEVEL) and no <name>_env key in the configuration names it",
            )
