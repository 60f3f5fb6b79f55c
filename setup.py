"""Packaging glue that pyproject.toml cannot say: the firmware tree and the board files ship inside the wheel.

They stay where they are in the repository (`firmware/` is a board's filesystem root, `boards/` its
definitions); the wheel carries copies under `motekit/_data/`, where `motekit.paths` finds them. An editable
install (`./dev`) reads the checkout's own directories instead, so nothing is copied there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = ("firmware", "boards")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA:
            dst = Path(self.build_lib) / "motekit" / "_data" / name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(HERE / name, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_data})
