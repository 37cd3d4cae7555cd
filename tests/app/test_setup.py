"""The setup script finds Python 3.10 or says what to install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from core.config import PROJECT_ROOT


def test_without_python310_setup_stops_and_names_what_to_install(tmp_path: Path) -> None:
    # A copy of the script in an empty project, with a PATH that has no python3.10 and no pyenv.
    (tmp_path / "scripts").mkdir()
    shutil.copy(PROJECT_ROOT / "scripts" / "setup-envs.sh", tmp_path / "scripts" / "setup-envs.sh")
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    for tool in ("bash", "cat", "sort", "ls", "dirname", "sha256sum", "cut"):
        found = shutil.which(tool)
        assert found is not None
        (bare_path / tool).symlink_to(found)
    result = subprocess.run(["bash", "scripts/setup-envs.sh", "app"], cwd=tmp_path,
                            env={"PATH": str(bare_path), "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "needs Python 3.10" in result.stderr
    assert "pyenv install 3.10" in result.stderr and "apt-get install python3.10" in result.stderr
    assert not (tmp_path / ".venv-app").exists()


def test_locks_are_exact_hashed_and_name_no_host_or_path() -> None:
    for name in ("app.txt", "rasa.txt", "tools.txt"):
        text = (PROJECT_ROOT / "locks" / name).read_text(encoding="utf-8")
        requirements = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert requirements, name
        assert all("==" in line and line.endswith("\\") for line in requirements), name
        assert "--hash=sha256:" in text
        assert "://" not in text and "/root" not in text and "/work" not in text, name
