"""The images a `--data` argument names: an ultralytics data yaml (train and val splits) or a folder of images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dattn.errors import ConfigError

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Dataset:
    """Calibration images (the train split, or the folder) and, for a data yaml, the yaml to validate with."""

    source: Path
    calibration: list[Path]
    data_yaml: Path | None  # None for a plain folder: no labels, so no mAP


def _images_in(location: Path) -> list[Path]:
    if location.is_dir():
        return sorted(p for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if location.suffix == ".txt" and location.is_file():  # ultralytics also takes a list of image paths
        lines = [line.strip() for line in location.read_text().splitlines() if line.strip()]
        return [(location.parent / line).resolve() if not Path(line).is_absolute() else Path(line) for line in lines]
    return []


def split_images(yaml: Path, split: str) -> list[Path]:
    from ultralytics.data.utils import check_det_dataset

    from dattn.ultralytics.quiet import ultralytics_quiet

    try:
        with ultralytics_quiet():  # it prints a blank line before its error for a missing split
            info = check_det_dataset(str(yaml), autodownload=False)
    except Exception as e:  # ultralytics reports missing splits and bad yamls with assorted exceptions
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--data {yaml}: not a usable ultralytics data yaml ({reason})") from None
    locations = info.get(split) or []
    return [image for location in ([locations] if isinstance(locations, str) else locations)
            for image in _images_in(Path(location))]


def evenly_spaced(items: list, count: int) -> list:
    """`count` items spread over the whole list (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def load_dataset(data: str | Path, limit: int) -> Dataset:
    """Resolve `--data`; ConfigError when it names nothing usable or holds no images."""
    path = Path(data)
    if not path.exists():
        raise ConfigError(f"--data {path}: no such file or folder")
    if path.is_dir():
        images, yaml = _images_in(path), None
    elif path.suffix in (".yaml", ".yml"):
        images, yaml = split_images(path, "train"), path
    else:
        raise ConfigError(f"--data {path}: expected an ultralytics data yaml or a folder of images")
    if not images:
        raise ConfigError(f"--data {path}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if yaml is not None and not split_images(yaml, "val"):
        raise ConfigError(f"--data {path}: its val split holds no images, so accuracy cannot be measured")
    return Dataset(path, evenly_spaced(images, limit), yaml)
