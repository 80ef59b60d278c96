"""`marginguard calc`: the what-if margin calculator, for people at a terminal and for scripts.

Reads one account document (JSON) from FILE or stdin, or with `--jsonl` one document per line, and answers
each with the model's liquidation prices and margin figures. Bad input names its field on stderr and exits 2;
with `--jsonl` the bad line is answered with `{"error": ...}` and the others still get their answers.
This command must stay light (it is registered on every `marginguard` run): it imports the margin model
only, never ccxt or the daemon.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TextIO

from daemon.app.calc_answer import answer_account
from daemon.app.calc_compare import compare_modes
from daemon.app.calc_input import CalcInputError, parse_document_text
from daemon.app.calc_output import comparison_as_json, comparison_table, dumps, risk_as_json, risk_table

EXIT_OK = 0
EXIT_BAD_INPUT = 2
PROGRAM = "marginguard calc"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "calc",
        help="what-if calculator: liquidation prices and margin for an account document",
        description=(
            "Compute liquidation and bankruptcy prices, maintenance margin and margin ratio for the positions "
            "in an account document (JSON). See config/example_account.json for the format."
        ),
    )
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="the document; '-' or omitted: stdin"
    )
    parser.add_argument(
        "--jsonl", action="store_true", help="one document per line in, one JSON line out each"
    )
    parser.add_argument(
        "--compare-modes",
        action="store_true",
        help="each position's liquidation price under isolated margin beside cross margin",
    )
    parser.add_argument("--json", action="store_true", help="JSON output even when stdout is a terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Bytes in, decoded per document (per line with --jsonl): invalid UTF-8 is one document's problem.
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as error:
        print(f"{PROGRAM}: {args.file}: cannot read: {error.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with source:
            if args.jsonl:
                return answer_lines(source, sys.stdout, args.compare_modes)
            table = not args.json and sys.stdout.isatty()
            return answer_document(source.read(), sys.stdout, args.compare_modes, table)
    except OSError as error:  # a directory given as FILE, a read error mid-way
        print(f"{PROGRAM}: {args.file}: cannot read: {error.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT


def answer_document(text: str | bytes, out: TextIO, compare: bool, table: bool) -> int:
    try:
        if table and compare:
            rendered = comparison_table(compare_modes(parse_document_text(text)))
        elif table:
            document = parse_document_text(text)
            rendered = risk_table(answer_account(document), document.account.exchange)
        else:
            rendered = dumps(answer(text, compare), pretty=True)
    except CalcInputError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:
        print(f"{PROGRAM}: {cannot_compute(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(rendered, file=out)
    return EXIT_OK


def answer_lines(lines: Iterable[str | bytes], out: TextIO, compare: bool) -> int:
    """Answer each non-blank line in order, flushing as we go so a pipe sees each answer as it is ready.

    A bad line is answered `{"error": ...}` (and named on stderr); the lines after it are still answered."""
    exit_code = EXIT_OK
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = answer(line, compare)
        except Exception as error:
            message = str(error) if isinstance(error, CalcInputError) else cannot_compute(error)
            print(f"{PROGRAM}: line {line_number}: {message}", file=sys.stderr)
            result = {"error": message}
            exit_code = EXIT_BAD_INPUT
        print(dumps(result, pretty=False), file=out, flush=True)
    return exit_code


def cannot_compute(error: Exception) -> str:
    """One line for a document the model could not evaluate (a bug, or input beyond its reach)."""
    return f"document: cannot be computed ({type(error).__name__}); please report it with the document"


def answer(text: str | bytes, compare: bool) -> dict[str, object]:
    """One document's answer as JSON-ready data; raises CalcInputError for bad input."""
    document = parse_document_text(text)
    if compare:
        return comparison_as_json(compare_modes(document))
    return risk_as_json(answer_account(document))
