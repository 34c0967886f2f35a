"""The README's commands compose as written (a fresh clone must not meet a command that fails on config)."""

import re
import shlex

from hydra._internal.utils import get_args_parser

from experiments import preflight
from experiments.config import validate
from tests.helpers import ROOT, compose

RUNNER = "-m experiments.run"


def readme_commands() -> list[str]:
    """Every `... -m experiments.run ...` line of the README's bash blocks, continuations joined, comments cut."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#", line, maxsplit=1)[0].strip()
            if RUNNER in line:
                commands.append(line)
    return commands


def test_readme_has_the_commands_a_newcomer_needs():
    commands = readme_commands()
    assert len(commands) >= 15
    assert any("debug=fast" in c for c in commands) and any("--index-url" in b for b in
                                                              [(ROOT / "README.md").read_text()])
    assert not [c for c in commands if "../shared" in c], "examples must not point at the team's checkout"


def test_every_readme_command_composes():
    """Each command's first job composes and validates (every sweep value is checked in test_debug_modes)."""
    for command in readme_commands():
        args = get_args_parser().parse_args(shlex.split(command.split(RUNNER, 1)[1]))
        if args.help:
            continue
        first = preflight.job_overrides(args.overrides, {})[0]
        try:
            validate(compose(first))
        except Exception as e:  # noqa: BLE001 - re-raised naming the README line
            raise AssertionError(f"README command does not compose: {command}\n{e}") from e
