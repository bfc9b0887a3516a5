# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python 3.8 lint for plugins/: tests/check_managed_python.py and plugins/ruff.toml."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location(
    "check_managed_python", REPO / "tests" / "check_managed_python.py"
)
assert _SPEC is not None and _SPEC.loader is not None
checker = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(checker)

FUTURE = "from __future__ import annotations\n"


def _findings(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "snippet.py"
    path.write_text(source)
    return checker.check_file(path)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import socket\nisinstance(1, socket.timeout | TimeoutError)\n", "isinstance()"),
        ("isinstance(1, int | str)\n", "isinstance()"),
        ("issubclass(int, (int | None))\n", "issubclass()"),
        ("Maybe = int | None\n", "X | Y type union"),
        ("Table = dict[str, int]\n", "dict[...]"),
        ("from collections.abc import Iterable\nItems = Iterable[int]\n", "Iterable[...]"),
        ("def f(x: int | None) -> None:\n    pass\n", "without 'from __future__"),
        ("def f() -> list[int]:\n    return []\n", "without 'from __future__"),
        ("'abc'.removeprefix('a')\n", ".removeprefix()"),
        ("list(zip([1], [2], strict=True))\n", "zip(strict=...)"),
        ("import functools\n@functools.cache\ndef f():\n    pass\n", "functools.cache"),
    ],
)
def test_flags_what_fails_on_python_38(tmp_path, source, message):
    found = _findings(tmp_path, source)
    assert any(message in line for line in found), found


@pytest.mark.parametrize(
    "source",
    [
        FUTURE + "def f(x: int | None, y: dict[str, list[int]]) -> tuple[int, ...]:\n    pass\n",
        FUTURE + "class A:\n    x: list[int] | None = None\n",
        "isinstance(1, (int, str))\n",
        "import re\nFLAGS = re.I | re.M\n",
        "value = 1 | 2\n",
        "from typing import Dict, Optional\nTable = Dict[str, Optional[int]]\n",
        "rows = [[1]][0][0]\n",
    ],
)
def test_leaves_python_38_code_alone(tmp_path, source):
    assert _findings(tmp_path, source) == []


def test_plugins_run_on_python_38():
    found = [f for path in (REPO / "plugins").rglob("*.py") for f in checker.check_file(path)]
    assert found == []


def test_ruff_lints_plugins_for_python_38():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed next to this Python")
    source = "def f(x):\n    match x:\n        case 1:\n            return 1\n"
    runs = {}
    for name in ("plugins/modules/example.py", "tests/unit/example.py"):
        runs[name] = subprocess.run(
            [ruff, "check", "--stdin-filename", name, "-"],
            input=source,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert runs["plugins/modules/example.py"].returncode == 1
    assert "Python 3.8" in runs["plugins/modules/example.py"].stdout
    # The rest of the repository targets the controller's Python.
    assert runs["tests/unit/example.py"].returncode == 0
