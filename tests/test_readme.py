"""Every code block of the README runs as written, so the README cannot drift from the code.

Python blocks run in this process, one Spark session for all, each in a fresh namespace (a block
marked ``<!-- continues the block above -->`` runs after the block before it, in its namespace).
Shell blocks run in bash with ``set -euo pipefail``. Both run in a scratch folder laid out like the
repository (``.venv`` and ``../shared`` reachable as the README assumes). A block marked
``<!-- not run: reason -->`` is skipped with that reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED

README = REPO_ROOT / "README.md"
RUNNABLE = {"python": "python", "bash": "bash", "sh": "bash"}
_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
_CONTINUES = "<!-- continues the block above -->"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: its language, first line number and code."""

    language: str
    line: int
    code: str
    not_run: str | None = None
    continues: bool = False


def readme_blocks(text: str) -> list[Block]:
    """The README's Python and shell blocks, with the marker on the line before each, if any.

    >>> readme_blocks("<!-- not run: needs a GPU -->\\n```bash\\nnvidia-smi\\n```\\n```text\\nx\\n```\\n")
    [Block(language='bash', line=2, code='nvidia-smi\\n', not_run='needs a GPU', continues=False)]
    """
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        language = RUNNABLE.get(fence.group(1))
        if language:
            before = lines[index - 1].strip() if index else ""
            marker = _NOT_RUN.search(before)
            blocks.append(Block(language, index + 1, "\n".join(lines[index + 1:end]) + "\n",
                                marker.group(1) if marker else None, before == _CONTINUES))
        index = end + 1
    return blocks


def _chains(blocks: list[Block]) -> list[list[Block]]:
    """Blocks grouped with the ones that continue them."""
    chains: list[list[Block]] = []
    for block in blocks:
        if block.continues:
            assert chains and chains[-1][-1].language == block.language == "python", block
            chains[-1].append(block)
        else:
            chains.append([block])
    return chains


CHAINS = _chains(readme_blocks(README.read_text(encoding="utf-8")))


def test_readme_markers_are_few_and_give_reasons():
    skipped = [chain[0] for chain in CHAINS if chain[0].not_run is not None]
    assert all(block.not_run for block in skipped)
    assert len(skipped) <= len(CHAINS) // 2, [block.line for block in skipped]


@pytest.fixture
def readme_folder(tmp_path, monkeypatch):
    """A scratch working folder where ``.venv/bin/deepframes`` and ``../shared`` resolve as in a clone."""
    work = tmp_path / "repository"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parents[1])
    (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(work)
    return work


# The breed application's block starts Spark four times and featurizes the 600 pets: minutes on a
# busy machine, over the suite's 10-minute default.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("chain", CHAINS, ids=[f"{chain[0].language}-line-{chain[0].line}" for chain in CHAINS])
def test_readme_block_runs(chain, readme_folder, spark_sessions):
    first = chain[0]
    if first.not_run is not None:
        pytest.skip(f"README.md:{first.line}: not run: {first.not_run}")
    if first.language == "bash":
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                                  os.environ.get("PYTHONPATH")]))}
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", first.code], cwd=readme_folder,
                                capture_output=True, text=True, timeout=1100, env=environment)
        assert result.returncode == 0, f"README.md:{first.line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return
    from tests.conftest import LOCAL_MASTER

    spark = spark_sessions.get(LOCAL_MASTER)  # the blocks' deepframes.session() returns this running session
    # The JVM started elsewhere: Hadoop resolves a relative path like save("pets-model") against its
    # local file system's working folder, not Python's, so point that at the scratch folder too.
    jvm = spark.sparkContext._jvm
    local = jvm.org.apache.hadoop.fs.FileSystem.getLocal(spark.sparkContext._jsc.hadoopConfiguration())
    before = local.getWorkingDirectory()
    local.setWorkingDirectory(jvm.org.apache.hadoop.fs.Path(str(readme_folder)))
    namespace = {"__name__": "__readme__"}
    try:
        for block in chain:
            exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
    finally:
        local.setWorkingDirectory(before)
