"""Orders from other systems: the 12345 government hotline, e-mail and fax desks, older systems.

``POST /api/workorders/import`` takes JSON (``{"source": "12345", "orders": [...]}``) or CSV (one order a
row; ``?source=12345``). Each order needs the source system's own id (``external_ref``): an order
imported before is reported as existing, not created twice, so a batch can simply be sent again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from router.access import STAFF_ROLES
from router.api import api
from router.api.auditing import audit
from router.api.spec import Call, validation_details
from router.bodies import loads_strict, read_body
from router.errors import BadRequest, Conflict, HubError, TooLarge, UnsupportedMediaType
from workorders.api import WORKORDERS
from workorders.service import NewOrder, Source

IMPORT_MAX_BYTES = 2 * 1024 * 1024
MAX_ORDERS = 2000
CSV_COLUMNS = ("external_ref", "category", "title", "description", "address", "contact_phone", "lat", "lng",
               "custom_fields")


class ImportQuery(BaseModel):
    source: Source = Field("12345", description="for CSV bodies: the system the rows come from")


class ImportResult(BaseModel):
    created: list[str] = Field(description="numbers of the new orders")
    existing: list[str] = Field(description="numbers of orders imported before")
    errors: list[dict[str, Any]] = Field(description='{"row": n, "external_ref", "code", "message", "fields"}')


def _rows(raw: bytes, content_type: str, source: str) -> list[dict[str, Any]]:
    if content_type == "application/json":
        data = loads_strict(raw)
        if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
            raise BadRequest('JSON 需要 {"source": …, "orders": [...]}', code="malformed_import")
        source = data.get("source", source)
        rows = data["orders"]
    elif content_type in {"text/csv", "application/csv"}:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadRequest("CSV 须为 UTF-8 编码", code="malformed_import") from exc
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        missing = [c for c in ("external_ref", "category", "title", "description") if c not in header]
        if missing:
            raise BadRequest(f"CSV 缺少列:{', '.join(missing)}", code="malformed_import")
        rows = [_csv_row(row) for row in reader]
    else:
        raise UnsupportedMediaType("请以 application/json 或 text/csv 提交", code="unsupported_media_type")
    if len(rows) > MAX_ORDERS:
        raise TooLarge(f"一次最多导入 {MAX_ORDERS} 条")
    return [{**row, "source": source} if isinstance(row, dict) else row for row in rows]


def _csv_row(row: dict[str, str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in row.items() if k in CSV_COLUMNS and v not in (None, "")}
    # A cell that does not parse stays text, and validation then names the field.
    for name in ("lat", "lng"):
        if name in values:
            with contextlib.suppress(ValueError):
                values[name] = float(values[name])
    if "custom_fields" in values:
        with contextlib.suppress(ValueError):
            values["custom_fields"] = json.loads(values["custom_fields"])
    return values


@api.endpoint("POST", "/api/workorders/import", summary="Import orders (JSON or CSV), idempotent by external_ref",
              roles=STAFF_ROLES, query=ImportQuery, response=ImportResult, tag="workorders", errors=(400, 413, 415))
async def import_orders(call: Call) -> ImportResult:
    request = call.request
    raw = await read_body(request, IMPORT_MAX_BYTES, f"导入内容超过 {IMPORT_MAX_BYTES // (1024 * 1024)} MB")
    service = request.app[WORKORDERS]
    result = ImportResult(created=[], existing=[], errors=[])
    for index, row in enumerate(_rows(raw, request.content_type, call.query.source), start=1):
        reference = row.get("external_ref") if isinstance(row, dict) else None
        try:
            order = NewOrder.model_validate(row)
            if order.external_ref is None:
                raise BadRequest("缺少 external_ref", code="missing_external_ref",
                                 details={"fields": {"external_ref": "required"}})
            result.created.append((await service.create(call.user, order)).number)
        except ValidationError as exc:
            result.errors.append({"row": index, "external_ref": reference, "code": "invalid",
                                  "message": "字段无效", **validation_details(exc)})
        except Conflict as exc:
            if exc.code != "duplicate_external_ref":
                raise
            result.existing.append(exc.details["number"])
        except HubError as exc:
            result.errors.append({"row": index, "external_ref": reference, "code": exc.code, "message": exc.message,
                                  **(exc.details or {})})
    # Each order is created in its own transaction; the import as a whole is recorded once it is done.
    async with service.sessions.begin() as session:
        audit(call, "workorders.import", "workorder_import", None, created=len(result.created),
              existing=len(result.existing), errors=len(result.errors))(session)
    return result
