"""Reading the registry's files (YAML, CSV, GeoJSON) into records that know their FILE:LINE."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("streets", "communities", "grids", "buildings", "landmarks", "people", "branches",
            # 双报到 and navigation: units (单位), party organisations, 党群服务中心
            "units", "organisations", "service_centres",
            # 三张清单: what the units' organisations offer
            "resources",
            # 共享空间: the rooms the community and units lend, bookable by /yuyue
            "spaces",
            # 党员学习资料库: study materials of a community's or a branch's library
            "library")

PERSON_ROLES = {"resident", "volunteer", "member", "grid_worker", "community_admin"}

REQUIRED = {
    "streets": ("code", "name"),
    "communities": ("code", "street", "name"),
    "grids": ("code", "community", "name"),
    "buildings": ("code", "grid", "address"),
    "landmarks": ("code", "grid", "name"),
    "people": ("code", "name"),
    "branches": ("code", "grid", "name"),
    "units": ("code", "name"),
    "organisations": ("code", "name"),
    "service_centres": ("code", "name", "address"),
    "resources": ("code", "organisation", "community", "kind", "title", "from", "to"),
    "spaces": ("code", "community", "name", "kind", "capacity", "hours"),
    "library": ("code", "topic", "kind", "title"),
}
ORGANISATION_KINDS = {"branch", "committee", "unit"}

SINGULAR = {"streets": "street", "communities": "community", "grids": "grid", "buildings": "building",
            "landmarks": "landmark", "people": "person", "branches": "branch", "units": "unit",
            "organisations": "organisation", "service_centres": "service centre",
            "resources": "resource", "spaces": "space", "library": "library item"}

LIST_FIELDS = {"admins", "commanders", "workers", "aliases", "roles", "members", "buildings", "managers",
               "equipment", "bookers"}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class Record:
    section: str
    data: dict[str, Any]
    file: str
    line: int | None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        return default if value in ("", None) else value

    @property
    def code(self) -> str:
        return str(self.data.get("code", "")).strip()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Polygon:
    grid_code: str
    geometry: dict[str, Any]
    file: str
    line: int | None


@dataclass(frozen=True)
class CrsSetting:
    """A file's statement of the coordinate system its coordinates are in (`crs:`)."""

    value: Any  # as written; core.registry.coordinates reads it
    file: str
    line: int | None


@dataclass
class RegistryInput:
    records: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    polygons: list[Polygon] = field(default_factory=list)
    crs: list[CrsSetting] = field(default_factory=list)


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that records each mapping's first line as `__line__` and the line of each of
    its keys as `__keys__` ({key: line})."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    mapping["__keys__"] = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return mapping  # type: ignore[return-value]

LINE_KEYS = ("__line__", "__keys__")

_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k not in LINE_KEYS}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _expand(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.suffix.lower() in {".yml", ".yaml", ".csv", ".geojson"}))
        else:
            files.append(path)
    return files


def read_inputs(paths: Sequence[Path]) -> tuple[RegistryInput, list[Problem]]:
    data = RegistryInput()
    problems: list[Problem] = []
    for path in _expand(paths):
        name = str(path)
        if not path.exists():
            problems.append(Problem(name, None, "no such file or directory"))
            continue
        suffix = path.suffix.lower()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, None, f"cannot read: {exc}"))
            continue
        if suffix in (".yml", ".yaml"):
            _read_yaml(name, text, data, problems)
        elif suffix == ".csv":
            _read_csv(name, path.stem.lower(), text, data, problems)
        elif suffix == ".geojson":
            _read_geojson(name, text, data, problems)
        else:
            problems.append(Problem(name, None, "unsupported file type (use .yml, .csv or .geojson)"))
    return data, problems


def _yaml_problem(name: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    return Problem(name, line, f"not valid YAML/JSON: {getattr(exc, 'problem', None) or exc}")


def _read_yaml(name: str, text: str, data: RegistryInput, problems: list[Problem]) -> None:
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(name, exc))
        return
    if doc is None:
        return
    if not isinstance(doc, dict):
        problems.append(Problem(name, 1, "expected a mapping with sections such as grids: and buildings:"))
        return
    key_lines = doc.get("__keys__") or {}
    for key, items in doc.items():
        if key in LINE_KEYS:
            continue
        if key == "crs":  # the registry's coordinate system (core.registry.coordinates)
            data.crs.append(CrsSetting(_strip_lines(items), name, key_lines.get(key)))
            continue
        if key not in SECTIONS:
            problems.append(Problem(name, None, f"unknown section {key!r} (expected one of {', '.join(SECTIONS)})"))
            continue
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(Problem(name, None, f"section {key!r} must be a list"))
            continue
        for item in items:
            if not isinstance(item, dict):
                problems.append(Problem(name, None, f"{key}: each entry must be a mapping, got {item!r}"))
                continue
            line = item.pop("__line__", None)
            record = Record(key, _strip_lines(item), name, line)
            data.records[key].append(record)
            if key == "grids" and item.get("polygon") is not None:
                data.polygons.append(Polygon(record.code, _strip_lines(item["polygon"]), name, line))


def _read_csv(name: str, section: str, text: str, data: RegistryInput, problems: list[Problem]) -> None:
    if section not in SECTIONS:
        problems.append(Problem(name, None, f"cannot tell what {name} holds: name it after a section "
                                            f"({', '.join(s + '.csv' for s in SECTIONS)})"))
        return
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        problems.append(Problem(name, 1, "empty CSV: expected a header line"))
        return
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(Problem(name, line, "more cells than header columns"))
            continue
        item: dict[str, Any] = {}
        for key, value in row.items():
            key = (key or "").strip()
            value = (value or "").strip()
            if key in LIST_FIELDS:
                item[key] = [v.strip() for v in value.replace("|", ";").split(";") if v.strip()]
            else:
                item[key] = value
        data.records[section].append(Record(section, item, name, line))


def _read_geojson(name: str, text: str, data: RegistryInput, problems: list[Problem]) -> None:
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # JSON is YAML; this keeps line numbers
    except yaml.YAMLError:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(name, exc.lineno, f"not valid JSON: {exc.msg}"))
            return
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        problems.append(Problem(name, 1, "expected a GeoJSON FeatureCollection"))
        return
    if "crs" in doc:  # a name, or GeoJSON 2008's {"type": "name", "properties": {"name": ...}}
        data.crs.append(CrsSetting(_strip_lines(doc["crs"]), name, (doc.get("__keys__") or {}).get("crs")))
    for feature in doc.get("features") or []:
        line = feature.get("__line__") if isinstance(feature, dict) else None
        props = (feature or {}).get("properties") or {}
        code = str(props.get("code", "")).strip()
        if not code:
            problems.append(Problem(name, line, "feature without properties.code (the grid code)"))
            continue
        data.polygons.append(Polygon(code, _strip_lines(feature.get("geometry")), name, line))
