"""Dataset files under config/datasets/: reading, with ``extends:`` for variants.

A dataset file may say ``extends: other.yaml`` (a path relative to itself) to start from
another dataset and override some keys. Mappings are merged key by key, except the keys in
:data:`REPLACED`, whose value replaces the inherited one whole (so ``effects: {}`` means no
effects at all, not "inherit the effects").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from csfcart.errors import InputError

REPLACED = {"effects", "composition", "claims", "timepoints"}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if key in REPLACED or not (isinstance(value, dict) and isinstance(out.get(key), dict)):
            out[key] = value
        else:
            out[key] = _merge(out[key], value)
    return out


def read_dataset(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a dataset YAML, resolving ``extends:`` chains."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: dataset file not found. Fix: give an existing file, e.g. config/datasets/csf_bcma_cart.yaml"
        )
    if path.resolve() in _seen:
        raise InputError(f"{path}: key 'extends': the files extend each other in a loop. Fix: break the cycle")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err}). Fix: correct the syntax") from err
    if not isinstance(doc, dict):
        raise InputError(f"{path}: is not a mapping of keys. Fix: see config/datasets/csf_bcma_cart.yaml")
    parent = doc.pop("extends", None)
    if parent is None:
        return doc
    base = read_dataset(path.parent / str(parent), (*_seen, path.resolve()))
    base.pop("dataset", None)
    return _merge(base, doc)
