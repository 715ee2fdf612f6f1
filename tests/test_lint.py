"""ruff (pyflakes, pycodestyle, isort, bugbear, pyupgrade) is clean on the whole repo."""

import subprocess
import sys
from pathlib import Path

from queue_exp.config import REPO_ROOT


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "."], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
