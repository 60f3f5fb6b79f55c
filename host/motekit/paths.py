"""Where the firmware tree and board files live (the repo checkout, or an override)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def firmware_dir() -> Path:
    return Path(os.environ.get("MOTEKIT_FIRMWARE", REPO / "firmware"))


def boards_dir() -> Path:
    return Path(os.environ.get("MOTEKIT_BOARDS", REPO / "boards"))


def shared_dir() -> Path:
    """Public test vectors, beside the checkout (../shared)."""
    return Path(os.environ.get("MOTEKIT_SHARED", REPO.parent / "shared"))
