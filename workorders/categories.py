"""The categories a water hotline starts with, and validation of custom fields against a category."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


def _choice(title: str, options: list[str]) -> dict[str, Any]:
    return {"type": "string", "title": title, "enum": options}


DEFAULT_CATEGORIES: list[dict[str, Any]] = [
    {"code": "consultation", "name": "咨询", "default_priority": 3, "sla_hours": 24,
     "fields_schema": _schema({"topic": {"type": "string", "title": "咨询内容", "maxLength": 200}})},
    {"code": "leak_repair", "name": "漏水报修", "default_priority": 1, "sla_hours": 4,
     "fields_schema": _schema({
         "leak_location": _choice("漏水位置", ["路面", "小区内", "户内", "水表井", "消防栓", "其他"]),
         "severity": _choice("漏水程度", ["滴漏", "渗漏", "冒水", "喷涌", "爆管"]),
     }, ["leak_location"])},
    {"code": "no_water", "name": "无水/停水", "default_priority": 1, "sla_hours": 4,
     "fields_schema": _schema({"scope": _choice("影响范围", ["单户", "整栋", "小区", "片区", "其他"])}, ["scope"])},
    {"code": "low_pressure", "name": "水压低", "default_priority": 2, "sla_hours": 24,
     "fields_schema": _schema({
         "floor": {"type": "integer", "title": "楼层", "minimum": -3, "maximum": 120},
         "time_of_day": {"type": "string", "title": "出现时段", "maxLength": 50},
     })},
    {"code": "water_quality", "name": "水质问题", "default_priority": 1, "sla_hours": 8,
     "fields_schema": _schema({"symptom": _choice("现象", ["浑浊", "发黄", "异味", "有杂质", "其他"])},
                              ["symptom"])},
    {"code": "meter", "name": "水表问题", "default_priority": 3, "sla_hours": 48,
     "fields_schema": _schema({
         "meter_number": {"type": "string", "title": "表号", "pattern": "^[0-9A-Za-z-]{4,20}$"},
         "problem": _choice("问题", ["停走", "漏水", "损坏", "冻裂", "读数异常"]),
     }, ["problem"])},
    {"code": "billing_dispute", "name": "水费争议", "default_priority": 3, "sla_hours": 72,
     "fields_schema": _schema({
         "account_number": {"type": "string", "title": "户号", "pattern": "^[0-9]{6,12}$"},
         "disputed_amount": {"type": "number", "title": "争议金额(元)", "minimum": 0},
     }, ["account_number"])},
    {"code": "complaint", "name": "投诉", "default_priority": 2, "sla_hours": 24,
     "fields_schema": _schema({"target": {"type": "string", "title": "投诉对象", "maxLength": 100}})},
    {"code": "suggestion", "name": "建议", "default_priority": 4, "sla_hours": 168, "fields_schema": _schema({})},
    {"code": "service_application", "name": "业务申请", "default_priority": 3, "sla_hours": 120,
     "fields_schema": _schema({
         "application_type": _choice("业务类型", ["新装", "过户", "销户", "移表", "改管", "暂停用水"]),
     }, ["application_type"])},
]


def check_fields_schema(schema: dict[str, Any]) -> None:
    """Raise ``ValueError`` if an admin's custom-field schema is not a valid JSON Schema of an object."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
    if schema.get("type") != "object":
        raise ValueError('custom fields must be described by a schema of "type": "object"')


def field_errors(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """Every problem of ``values`` against ``schema``, keyed by the field's path (empty: valid)."""
    errors: dict[str, str] = {}
    for error in Draft202012Validator(schema).iter_errors(values):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = ".".join(filter(None, [path, missing]))
        elif error.validator == "additionalProperties":
            extra = sorted(set(values) - set(schema.get("properties", {})))
            path = ".".join(filter(None, [path, *extra[:1]]))
        errors.setdefault(f"custom_fields.{path}" if path else "custom_fields", error.message)
    return errors
