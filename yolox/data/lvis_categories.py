"""LVIS v1's categories and its frequency-group rule.

``lvis_v1_categories.json`` (next to this file, shipped in the wheel) holds the 1203 categories of
``lvis_v1_train.json``: id, name, frequency ('r'/'c'/'f') and training image_count. LVIS groups a category
by the number of training images that hold it: rare up to 10, common up to 100, frequent more.
"""
import json
from pathlib import Path

__all__ = [
    "LVIS_CATEGORIES_FILE",
    "LVIS_RARE_MAX",
    "LVIS_COMMON_MAX",
    "FREQUENCY_GROUPS",
    "load_lvis_categories",
    "frequency_group",
]

LVIS_CATEGORIES_FILE = Path(__file__).with_name("lvis_v1_categories.json")
LVIS_RARE_MAX = 10  # training images of a rare category, at most
LVIS_COMMON_MAX = 100  # training images of a common category, at most
FREQUENCY_GROUPS = ("r", "c", "f")


def load_lvis_categories() -> list[dict]:
    """The 1203 LVIS v1 categories: dicts with id, name, frequency ('r'/'c'/'f'), image_count."""
    data = json.loads(LVIS_CATEGORIES_FILE.read_text())
    return [dict(zip(data["fields"], row)) for row in data["categories"]]


def frequency_group(image_count: int, rare_max: int = LVIS_RARE_MAX, common_max: int = LVIS_COMMON_MAX) -> str:
    """LVIS's rule: 'r' up to rare_max training images, 'c' up to common_max, else 'f'."""
    if image_count <= rare_max:
        return "r"
    return "c" if image_count <= common_max else "f"
