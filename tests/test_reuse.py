"""problems/ alone: docs/reuse.md's example runs in an interpreter where agwm cannot be imported."""

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # runs the example in a fresh interpreter
def test_the_reuse_example_needs_nothing_of_agwm(tmp_path):
    example = re.search(r"```python\n(.*?)```", (REPO / "docs" / "reuse.md").read_text(), re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text("import sys\nsys.modules['agwm'] = None  # import agwm now fails\n" + example)
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    informative, noise = map(float, run.stdout.splitlines()[-1].split())
    assert noise > 5 * informative  # the learned penalties find the noise features
