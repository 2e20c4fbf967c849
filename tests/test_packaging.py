"""
Tests of the packaging: a wheel built from the source tree carries the twistd
plugin, without which C{twistd chat} does not exist once installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.e2e import short_temp_dir

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "twisted/plugins/twisted_chat_plugin.py"


def _version(name: str) -> tuple[int, ...] | None:
    try:
        text = version(name)
    except PackageNotFoundError:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def can_build_offline() -> bool:
    """
    Whether this environment has what the build backend needs, so the wheel
    can be built with C{--no-isolation} instead of downloading it.
    """
    setuptools = _version("setuptools")
    if setuptools is None or setuptools < (64,):
        return False
    # setuptools 70.1 builds wheels itself; older ones need the wheel package.
    return setuptools >= (70, 1) or _version("wheel") is not None


def source_files(root: Path) -> list[str]:
    """The files of the working tree that git does not ignore."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        raise SkipTest(f"not a git checkout, cannot list the source files: {e}") from e
    names = listed.stdout.decode("utf-8").split("\0")
    return [name for name in names if name and (root / name).is_file()]


class WheelTests(SynchronousTestCase):
    """A wheel built from the source tree."""

    def test_wheel_contents(self) -> None:
        """
        The wheel holds the plugin file and every module of the package, and
        no C{__init__.py} in C{twisted/} or C{twisted/plugins/} (which would
        replace Twisted's own).
        """
        temp = Path(short_temp_dir(self))
        source, out = temp / "source", temp / "dist"
        # Build from a copy, so the build leaves nothing in the tree.
        for name in source_files(ROOT):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out)]
        if can_build_offline():
            command.append("--no-isolation")
        built = subprocess.run(
            [*command, str(source)], capture_output=True, text=True, timeout=600
        )
        self.assertEqual(built.returncode, 0, built.stdout + built.stderr)
        [wheel] = out.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            self.assertIn(PLUGIN, names)
            plugin = archive.read(PLUGIN)

        self.assertEqual(plugin, (ROOT / PLUGIN).read_bytes())
        package = [
            path.relative_to(source).as_posix()
            for path in (source / "twisted_chat").rglob("*")
            if path.suffix == ".py" or path.name == "py.typed"
        ]
        self.assertIn("twisted_chat/__init__.py", package)
        self.assertEqual(
            sorted(name for name in names if ".dist-info/" not in name),
            sorted([PLUGIN, *package]),
        )
        for forbidden in ("twisted/__init__.py", "twisted/plugins/__init__.py"):
            self.assertNotIn(forbidden, names)
