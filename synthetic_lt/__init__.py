"""A synthetic long-tailed detection dataset in LVIS v1 (or plain COCO) format, made from a seed.

Classes are drawn objects: shape x colour x texture (e.g. ``red_striped_triangle``), placed at varied
scale, rotation and partial occlusion over textured, noisy backgrounds. The classes of one dataset are
taken from a small attribute grid, so every class shares two attributes with several others: distinct,
but confusable.

The long tail is LVIS v1's own: ``num_classes`` real LVIS categories are sampled keeping the
rare/common/frequent proportions (337:461:405 by default), and each one's real training image count
is mapped onto this dataset's size (see :func:`scale_image_counts`). Training images then receive
their classes so that every class appears in exactly its target number of images. The validation
split is balanced instead: every class gets at least ``min_val_instances_per_class`` instances, so that
APr is a stable number.

Frequency groups follow LVIS's rule (rare: 1-10 training images, common: 11-100, frequent: more;
:mod:`yolox.data.lvis_categories`) with the two thresholds scaled to the dataset size
(:func:`frequency_thresholds`); each category's ``frequency`` is always the rule applied to its actual
training ``image_count``, and the thresholds are written to ``info.frequency_rule`` of both json files.

The steps, one module each: :mod:`.spec` (what to generate, presets), :mod:`.long_tail` (group sizes,
thresholds, image counts), :mod:`.planning` (classes and every image's objects), :mod:`.drawing`
(backgrounds and objects), :mod:`.writing` (JPEG and json files), :mod:`.report` (group summaries).

    spec = LTDatasetSpec(num_classes=30, num_train_images=600, num_val_images=200, seed=0)
    paths = generate_lt_dataset("datasets/lt_benchmark", spec)
"""
from .drawing import draw_object, render_background
from .long_tail import frequency_thresholds, group_sizes, log_spaced_image_counts, scale_image_counts
from .planning import LTDatasetPlan, plan_lt_dataset
from .report import format_group_summary, group_summary
from .spec import COLOURS, LT_PRESETS, SHAPES, TEXTURES, LTDatasetSpec, preset_spec
from .writing import generate_lt_dataset

__all__ = [
    "LTDatasetSpec",
    "LTDatasetPlan",
    "LT_PRESETS",
    "preset_spec",
    "generate_lt_dataset",
    "plan_lt_dataset",
    "group_sizes",
    "frequency_thresholds",
    "scale_image_counts",
    "log_spaced_image_counts",
    "draw_object",
    "render_background",
    "group_summary",
    "format_group_summary",
    "SHAPES",
    "COLOURS",
    "TEXTURES",
]
