"""Configuration and sample sheet: resolution of the dataset, strict validation.

Every error is an :class:`~csfcart.errors.InputError` naming the file, the key or the row,
and the fix, raised before any job runs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from csfcart.datasets import read_dataset
from csfcart.errors import InputError
from csfcart.registry import CLAIM_IDS

REQUIRED_COLUMNS = ["sample_id", "patient_id", "timepoint", "compartment", "path"]
#: the sheet's optional columns with a meaning of their own (and one the workflow adds);
#: any other column is a covariate, kept in obs
OPTIONAL_COLUMNS = ["format", "batch", "condition", "day", "cells_per_ul", "compartment_label"]


def sheet_covariates(columns) -> list[str]:
    """The sample sheet's covariate columns: those that are neither required nor optional."""
    return [c for c in columns if c not in REQUIRED_COLUMNS and c not in OPTIONAL_COLUMNS]


def check_covariates(covariates: list[str], samples: pd.DataFrame) -> None:
    """Each of ``analysis.covariates`` must be a covariate column of the sample sheet."""
    have = sheet_covariates(samples.columns)
    for name in covariates:
        if name not in have:
            raise InputError(
                f"config: key 'analysis.covariates': '{name}' is not a column of the sample sheet "
                f"(its covariates: {', '.join(have) or 'none'}). Fix: add the column to the sheet or remove it "
                "from analysis.covariates"
            )


FORMATS = ("10x_mtx", "10x_h5", "h5ad", "csv")
#: keys a dataset file may carry into the workflow configuration
DATASET_KEYS = {"dataset", "simulation", "samples", "car_feature", "claims", "download", "reference_condition"}


def _schema(path: str | Path) -> dict:
    """The schema, with the claim ids it accepts taken from the claim registry."""
    schema = yaml.safe_load(Path(path).read_text())
    claims = schema.get("properties", {}).get("claims")
    if claims is not None:
        claims["items"] = {"enum": list(CLAIM_IDS)}
    return schema


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _explain(error: jsonschema.ValidationError) -> str:
    """A one-line problem and fix for a JSON-schema error."""
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = ".".join([*[str(p) for p in error.absolute_path], extra[0]]) if extra else _where(error)
        return f"key '{key}': unknown key. Fix: remove it or use one of: {', '.join(allowed)}"
    if v == "enum":
        return f"key '{_where(error)}': {error.instance!r} is not allowed. Fix: use one of: {', '.join(map(str, error.validator_value))}"
    if v == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        key = ".".join([*[str(p) for p in error.absolute_path], missing[0]]) if missing else _where(error)
        return f"key '{key}': missing. Fix: add it (see config/README.md)"
    if v == "pattern":
        return (
            f"key '{_where(error)}': {error.instance!r} is not a safe name. "
            "Fix: use letters, digits, '_', '.' or '-' only (no spaces or slashes)"
        )
    if v == "type" and error.validator_value == "boolean":
        return (
            f"key '{_where(error)}': {error.instance!r} is not true or false. "
            f"Fix: write true or false in YAML (on the command line: --config {_where(error)}=True)"
        )
    return f"key '{_where(error)}': {error.message}. Fix: see {error.schema.get('description', 'the schema')}"


def _fill_defaults(schema: dict, instance: Any) -> None:
    """Give every missing key of ``instance`` its schema ``default`` (nested objects too)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(sub, instance[key])


def validate_config(config: dict[str, Any], schema: str | Path, source: str = "config") -> dict[str, Any]:
    """``config`` with the schema's defaults filled in, validated strictly (unknown keys are
    refused). The schema is the one place a default is defined; ``config`` is not modified."""
    rules = _schema(schema)
    config = copy.deepcopy(config)
    _fill_defaults(rules, config)
    validator = jsonschema.Draft202012Validator(rules)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        raise InputError(f"{source}: {_explain(errors[0])}")
    annotation = config["annotation"]
    if annotation["method"] == "celltypist" and not annotation["celltypist_model"]:
        raise InputError(
            f"{source}: key 'annotation.celltypist_model': empty, but annotation.method is celltypist. "
            "Fix: give the path of a CellTypist model file (.pkl), or set annotation.method: markers"
        )
    if annotation["method"] == "labels" and not annotation["labels"]:
        raise InputError(
            f"{source}: key 'annotation.labels': empty, but annotation.method is labels. "
            "Fix: name the obs column of your .h5ad inputs that holds your labels"
        )
    return config


def default_config(schema: str | Path, **keys: Any) -> dict[str, Any]:
    """The workflow's defaults (the schema's), completed by ``keys`` (at least ``dataset``)."""
    return validate_config(dict(keys), schema)


def resolve_dataset(
    config: dict[str, Any], datasets_dir: str | Path, *, search: tuple[str | Path, ...] = ()
) -> dict[str, Any]:
    """Complete ``config`` with its dataset file (``config/datasets/<dataset>.yaml``).

    The dataset file supplies ``simulation:`` or ``samples:`` (and optionally
    ``car_feature:``); keys already in ``config`` win. ``extends:`` chains are resolved.
    A dataset file given with ``--configfile`` from elsewhere (its name not in
    ``datasets_dir``) may itself say ``extends:``: the parent is looked for beside it
    (``search``: the folders of the config files) and then in ``datasets_dir``.
    """
    config = dict(config)
    parent = config.pop("extends", None)
    if "dataset" not in config:
        raise InputError("config: key 'dataset': missing. Fix: name the dataset in config/config.yaml")
    path = Path(datasets_dir) / f"{config['dataset']}.yaml"
    if parent is not None and not path.is_file():
        folders = [Path(f) for f in search] + [Path(datasets_dir)]
        found = [f / str(parent) for f in folders if (f / str(parent)).is_file()]
        if not found:
            raise InputError(
                f"config: key 'extends': '{parent}' not found in {', '.join(str(f) for f in folders)}. "
                "Fix: give the parent's path relative to the dataset file, or the name of a file in config/datasets/"
            )
        path = found[0]
    if path.is_file():
        doc = read_dataset(path)
        extra = sorted(set(doc) - DATASET_KEYS)
        if extra:
            raise InputError(
                f"{path}: key '{extra[0]}': not a dataset key. Fix: use only {', '.join(sorted(DATASET_KEYS))}"
            )
        for key, value in doc.items():
            if key == "simulation" and isinstance(config.get(key), dict):
                from csfcart.datasets import _merge

                config[key] = _merge(value, config[key])
            else:
                config.setdefault(key, value)
    if ("simulation" in config) == ("samples" in config):
        raise InputError(
            f"config: dataset '{config.get('dataset')}' needs exactly one of 'simulation' or 'samples'. "
            f"Fix: add config/datasets/{config.get('dataset')}.yaml, or set samples: path/to/samples.tsv"
        )
    return config


def infer_format(path: str) -> str | None:
    p = path.lower()
    if p.endswith(".h5ad"):
        return "h5ad"
    if p.endswith(".h5"):
        return "10x_h5"
    if p.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        return "csv"
    return None


#: The compartments the claims know; any other label needs a role (config ``compartments``).
ROLES = ("CSF", "blood")


def read_sample_sheet(
    path: str | Path,
    schema: str | Path,
    *,
    check_files: bool = True,
    base: str | Path | None = None,
    roles: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate a sample sheet; paths become absolute-or-cwd-relative.

    Relative paths are taken from the sheet's folder, or from ``base`` (the download folder
    of a public dataset, whose files appear only once the workflow has fetched them).
    A compartment label other than CSF or blood (``PBMC``, ``liquor``) takes its role from
    ``roles`` (config ``compartments``); the sheet's own label is kept in
    ``compartment_label``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: sample sheet not found. Fix: set 'samples:' to an existing TSV file")
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    missing = [c for c in REQUIRED_COLUMNS if c not in sheet.columns]
    if missing:
        raise InputError(
            f"{path}: column '{missing[0]}' missing. Fix: the sheet needs the columns {', '.join(REQUIRED_COLUMNS)} "
            "(optional: format, batch, condition, day, cells_per_ul; any other column is kept as a covariate)"
        )
    validator = jsonschema.Draft202012Validator(_schema(schema))
    for i, row in enumerate(sheet.to_dict("records")):
        record = {k: v for k, v in row.items() if v != "" or k in REQUIRED_COLUMNS}
        errors = sorted(validator.iter_errors(record), key=lambda e: e.path)
        if errors:
            raise InputError(f"{path}, row {i + 2} (sample '{row['sample_id']}'): {_explain(errors[0])}")
    dup = sheet["sample_id"][sheet["sample_id"].duplicated()]
    if len(dup):
        rows = [str(i + 2) for i in sheet.index[sheet["sample_id"] == dup.iloc[0]]]
        raise InputError(
            f"{path}, rows {', '.join(rows)}: sample_id '{dup.iloc[0]}' is duplicated. Fix: give every sample a unique id"
        )
    roles = {**{r: r for r in ROLES}, **(roles or {})}
    for i, label in sheet["compartment"].items():
        if label not in roles:
            raise InputError(
                f"{path}, row {i + 2} (sample '{sheet.loc[i, 'sample_id']}'): compartment '{label}' has no role. "
                f"Fix: write CSF or blood, or declare it in the config: compartments: {{{label}: blood}}"
            )
    sheet["compartment_label"] = sheet["compartment"]
    sheet["compartment"] = sheet["compartment"].map(roles)
    if "format" not in sheet.columns:
        sheet["format"] = ""
    if "batch" not in sheet.columns:
        sheet["batch"] = sheet["sample_id"]
    base = Path(base) if base is not None else path.parent
    for i, row in sheet.iterrows():
        full = Path(row["path"]) if Path(row["path"]).is_absolute() else base / row["path"]
        sheet.loc[i, "path"] = str(full)
        if check_files and not (full.exists() or _is_mtx_prefix(full)):
            raise InputError(
                f"{path}, row {i + 2} (sample '{row['sample_id']}'): file not found: {full}. "
                "Fix: correct 'path' (relative to the sheet's folder) or add the file"
            )
        fmt = (
            row["format"]
            or infer_format(row["path"])
            or ("10x_mtx" if not check_files or full.is_dir() or _is_mtx_prefix(full) else "")
        )
        if not fmt:
            raise InputError(
                f"{path}, row {i + 2} (sample '{row['sample_id']}'): cannot tell the format of '{row['path']}'. "
                f"Fix: add a 'format' column with one of {', '.join(FORMATS)}"
            )
        sheet.loc[i, "format"] = fmt
        if not sheet.loc[i, "batch"]:
            sheet.loc[i, "batch"] = row["sample_id"]
    return sheet.set_index("sample_id", drop=False)


def _is_mtx_prefix(path: Path) -> bool:
    """A GEO-style prefix such as ``raw/GSM123_MS1_`` of ``..._matrix.mtx.gz`` files."""
    parent = path.parent
    return parent.is_dir() and any(p.name.startswith(path.name) and "matrix.mtx" in p.name for p in parent.iterdir())


def config_docs(schema: str | Path) -> str:
    """config/README.md: every key of the schema with its type, default and meaning."""
    rules = _schema(schema)
    lines = [
        "# Configuration",
        "",
        "Generated from `config/schemas/config.schema.yaml` by `make config-docs`; do not edit.",
        "",
        "The schema is the one place a default is defined. `config/config.yaml` names the dataset",
        "and anything you change; a dataset file (`config/datasets/<name>.yaml`), `--configfile`",
        "and `--config` override it in that order. The effective configuration of a run, every",
        "default filled in, is written to `<results>/<dataset>/provenance/config.yaml`.",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]

    def kind(sub: dict) -> str:
        if "enum" in sub:
            return " / ".join(str(v) for v in sub["enum"])
        return str(sub.get("type", "object"))

    def show(value: Any) -> str:
        if value is None:
            return ""
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        return f"`{text.removesuffix('...').strip()}`"

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            nested = "properties" in sub
            default = "" if nested else show(sub.get("default"))
            meaning = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {kind(sub)} | {default} | {meaning} |")
            if nested:
                walk(sub, f"{name}.")

    walk(rules, "")
    return "\n".join(lines) + "\n"
