"""Running the command in tests: exit code, output, and the last JSON line."""

from __future__ import annotations

import json

from deepframes.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def one_line_error(err: str, command: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"deepframes {command}: error: "), lines[0]
    return lines[0]
