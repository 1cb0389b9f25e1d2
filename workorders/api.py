"""REST API of work orders: categories (admin), departments, orders, transitions."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from router.access import ADMIN_ROLES, ALL_ROLES, STAFF_ROLES
from router.api import api
from router.api.auditing import Audit, audit, changes
from router.api.spec import HUB, MAX_ID, UUID_PATTERN, Call
from router.errors import Conflict, Invalid, NotFound
from router.models import Role, StaffUser, utcnow
from router.residents import resident_of
from router.schemas import StrictBody
from router.uploads import file_response, read_upload
from workorders.categories import check_fields_schema
from workorders.dispatch import DispatchRule
from workorders.models import Department, WorkOrderCategory
from workorders.notices import DEFAULT_TEMPLATES, PLACEHOLDERS, MessageTemplate, check_template
from workorders.service import (
    ListQuery,
    NewOrder,
    NoteBody,
    ResidentOrders,
    ResidentQuery,
    SurveyAnswer,
    SurveyQuery,
    SurveyView,
    TransitionBody,
    WorkOrderDetail,
    WorkOrderOut,
    WorkOrderService,
)
from workorders.workflow import STANDARD_WORKFLOW, parse_workflow

WORKORDERS: web.AppKey[WorkOrderService] = web.AppKey("workorders")
ORDER_READERS = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT, Role.HANDLER, Role.FIELD_CREW})
ORDER = "/api/workorders/{order_id:\\d+}"


class CategoryOut(BaseModel):
    id: int
    code: str
    name: str
    fields_schema: dict
    default_priority: int
    sla_hours: float
    sla_calendar: str
    callback: str
    workflow: dict
    active: bool


class CategoryBody(StrictBody):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    name: str = Field(min_length=1, max_length=100)
    fields_schema: dict = Field(default_factory=lambda: {"type": "object", "properties": {}})
    default_priority: int = Field(2, ge=1, le=4)
    sla_hours: float = Field(gt=0, le=24 * 365)
    sla_calendar: Literal["24x7", "working_hours"] = Field(
        "24x7", description="count every hour, or only the office's working hours on working days")
    callback: Literal["agent", "survey"] = Field(
        "agent", description="after completion: an agent calls back, or the resident gets a survey link")
    workflow: dict = Field(default_factory=lambda: STANDARD_WORKFLOW)
    active: bool = True

    @field_validator("fields_schema")
    @classmethod
    def valid_schema(cls, value: dict) -> dict:
        check_fields_schema(value)
        return value

    @field_validator("workflow")
    @classmethod
    def valid_workflow(cls, value: dict) -> dict:
        parse_workflow(value)
        return value


class ItemsOfCategories(BaseModel):
    items: list[CategoryOut]


class DepartmentOut(BaseModel):
    id: int
    name: str


class DepartmentBody(StrictBody):
    name: str = Field(min_length=1, max_length=100)


class ItemsOfDepartments(BaseModel):
    items: list[DepartmentOut]


class ItemsOfOrders(BaseModel):
    items: list[WorkOrderOut]


def _category_out(category: WorkOrderCategory) -> CategoryOut:
    return CategoryOut(id=category.id, code=category.code, name=category.name, fields_schema=category.fields_schema,
                       default_priority=category.default_priority, sla_hours=category.sla_hours,
                       sla_calendar=category.sla_calendar, callback=category.callback,
                       workflow=parse_workflow(category.workflow).model_dump(by_alias=True),  # defaults filled in
                       active=category.active)


@api.endpoint("GET", "/api/workorder-categories", summary="Work-order categories", roles=ALL_ROLES,
              response=ItemsOfCategories, tag="workorders")
async def list_categories(call: Call) -> ItemsOfCategories:
    async with call.request.app[WORKORDERS].sessions() as session:
        categories = await session.scalars(select(WorkOrderCategory).order_by(WorkOrderCategory.id))
        return ItemsOfCategories(items=[_category_out(c) for c in categories])


@api.endpoint("POST", "/api/workorder-categories", summary="Create a category", roles=ADMIN_ROLES, body=CategoryBody,
              response=CategoryOut, status=201, tag="workorders", errors=(409,))
async def create_category(call: Call) -> CategoryOut:
    body: CategoryBody = call.body
    async with call.request.app[WORKORDERS].sessions.begin() as session:
        if await session.scalar(select(WorkOrderCategory.id).where(WorkOrderCategory.code == body.code)):
            raise Conflict("类别代码已存在", code="category_exists")
        category = WorkOrderCategory(**body.model_dump())
        session.add(category)
        await session.flush()
        audit(call, "category.create", "workorder_category", category.id, code=body.code)(session)
        return _category_out(category)


@api.endpoint("PUT", "/api/workorder-categories/{category_id:\\d+}", summary="Change a category", roles=ADMIN_ROLES,
              body=CategoryBody, response=CategoryOut, tag="workorders", errors=(409,))
async def update_category(call: Call) -> CategoryOut:
    body: CategoryBody = call.body
    async with call.request.app[WORKORDERS].sessions.begin() as session:
        category = await session.get(WorkOrderCategory, call.path["category_id"])
        if category is None:
            raise NotFound("类别不存在", code="category_not_found")
        if body.code != category.code:
            raise Invalid("类别代码不能修改", code="code_immutable", details={"fields": {"code": "immutable"}})
        after = body.model_dump()
        # A change of the category's workflow is one of the changes recorded.
        audit(call, "category.change", "workorder_category", category.id, code=category.code, changes=changes(
            {name: getattr(category, name) for name in after}, body.model_dump(mode="json")))(session)
        for name, value in after.items():
            setattr(category, name, value)
        return _category_out(category)


@api.endpoint("GET", "/api/departments", summary="Departments", roles=ALL_ROLES, response=ItemsOfDepartments,
              tag="workorders")
async def list_departments(call: Call) -> ItemsOfDepartments:
    async with call.request.app[WORKORDERS].sessions() as session:
        departments = await session.scalars(select(Department).order_by(Department.id))
        return ItemsOfDepartments(items=[DepartmentOut(id=d.id, name=d.name) for d in departments])


class MemberOut(BaseModel):
    id: int
    display_name: str
    role: str


class ItemsOfMembers(BaseModel):
    items: list[MemberOut]


@api.endpoint("GET", "/api/departments/{department_id:\\d+}/members",
              summary="Active field crews and handlers of a department (who an order can be assigned to)",
              roles=frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT, Role.HANDLER}), response=ItemsOfMembers,
              tag="workorders")
async def list_members(call: Call) -> ItemsOfMembers:
    async with call.request.app[WORKORDERS].sessions() as session:
        if await session.get(Department, call.path["department_id"]) is None:
            raise NotFound("部门不存在", code="department_not_found")
        members = await session.scalars(select(StaffUser).where(
            StaffUser.department_id == call.path["department_id"], StaffUser.active,
            StaffUser.role.in_([Role.FIELD_CREW, Role.HANDLER])).order_by(StaffUser.role, StaffUser.id))
        return ItemsOfMembers(items=[MemberOut(id=m.id, display_name=m.display_name, role=m.role) for m in members])


class RegionOut(BaseModel):
    code: str
    name: str


class ItemsOfRegions(BaseModel):
    items: list[RegionOut]


@api.endpoint("GET", "/api/regions", summary="Regions of the district gazetteer (dispatch and list filters)",
              roles=ALL_ROLES, response=ItemsOfRegions, tag="workorders")
async def list_regions(call: Call) -> ItemsOfRegions:
    names = call.request.app[WORKORDERS].region_names
    return ItemsOfRegions(items=[RegionOut(code=code, name=name) for code, name in names.items()])


@api.endpoint("POST", "/api/departments", summary="Create a department", roles=ADMIN_ROLES, body=DepartmentBody,
              response=DepartmentOut, status=201, tag="workorders", errors=(409,))
async def create_department(call: Call) -> DepartmentOut:
    async with call.request.app[WORKORDERS].sessions.begin() as session:
        if await session.scalar(select(Department.id).where(Department.name == call.body.name)):
            raise Conflict("部门已存在", code="department_exists")
        department = Department(name=call.body.name)
        session.add(department)
        await session.flush()
        audit(call, "department.create", "department", department.id, name=department.name)(session)
        return DepartmentOut(id=department.id, name=department.name)


@api.endpoint("POST", "/api/workorders", summary="Create a work order", roles=STAFF_ROLES, body=NewOrder,
              response=WorkOrderDetail, status=201, tag="workorders", errors=(409,))
async def create_order(call: Call) -> WorkOrderDetail:
    return await call.request.app[WORKORDERS].create(call.user, call.body)


@api.endpoint("GET", "/api/workorders", summary="Work orders the caller may see, newest first", roles=ORDER_READERS,
              query=ListQuery, response=ItemsOfOrders, tag="workorders")
async def list_orders(call: Call) -> ItemsOfOrders:
    return ItemsOfOrders(items=await call.request.app[WORKORDERS].list(call.user, call.query))


@api.endpoint("GET", ORDER, summary="A work order with its timeline", roles=ORDER_READERS,
              response=WorkOrderDetail, tag="workorders")
async def get_order(call: Call) -> WorkOrderDetail:
    return await call.request.app[WORKORDERS].get(call.user, call.path["order_id"])


@api.endpoint("POST", ORDER + "/transitions", summary="Move a work order through its workflow",
              roles=ORDER_READERS, body=TransitionBody, response=WorkOrderDetail, tag="workorders", errors=(409,))
async def transition_order(call: Call) -> WorkOrderDetail:
    return await call.request.app[WORKORDERS].transition(call.user, call.path["order_id"], call.body)


@api.endpoint("POST", ORDER + "/notes", summary="Add a note to an open order's timeline", roles=ORDER_READERS,
              body=NoteBody, response=WorkOrderDetail, status=201, tag="workorders", errors=(409,))
async def add_note(call: Call) -> WorkOrderDetail:
    return await call.request.app[WORKORDERS].add_note(call.user, call.path["order_id"], call.body.comment)


@api.endpoint("POST", ORDER + "/attachments", summary="Add a photo (JPEG, PNG, GIF, WebP) to an open order",
              roles=ORDER_READERS, upload=True, response=WorkOrderDetail, status=201, tag="workorders",
              errors=(409,))
async def add_attachment(call: Call) -> WorkOrderDetail:
    service = call.request.app[WORKORDERS]
    await service.check_visible(call.user, call.path["order_id"])  # 404/403 before reading a large body
    upload = await read_upload(call.request, call.request.app[HUB].settings.upload_max_bytes, images_only=True)
    return await service.attach(call.user, call.path["order_id"], upload)


@api.endpoint("GET", ORDER + "/files/{file_id:" + UUID_PATTERN + "}", summary="A photo of an order",
              roles=ORDER_READERS, tag="workorders")
async def get_attachment(call: Call) -> web.FileResponse:
    info, path = await call.request.app[WORKORDERS].open_file(call.user, call.path["order_id"],
                                                              call.path["file_id"])
    return file_response(info.name, info.content_type, path)


@api.endpoint("GET", "/api/surveys", summary="A resident's satisfaction survey, by the token of its link",
              roles=None, query=SurveyQuery, response=SurveyView, tag="workorders", errors=(404,))
async def get_survey(call: Call) -> SurveyView:
    return await call.request.app[WORKORDERS].survey(call.query.token)


@api.endpoint("GET", "/api/my/orders", summary="A resident's own orders, by the token of their link",
              roles=None, query=ResidentQuery, response=ResidentOrders, tag="workorders", errors=(404,))
async def my_orders(call: Call) -> ResidentOrders:
    resident = resident_of(call.request.app[HUB].secret_key, call.query.token)
    if resident is None:
        raise NotFound("链接已失效,请从公众号菜单重新进入", code="link_expired")
    return await call.request.app[WORKORDERS].orders_of_resident(*resident)


@api.endpoint("POST", "/api/surveys", summary="Answer a satisfaction survey (once)", roles=None,
              body=SurveyAnswer, response=SurveyView, tag="workorders", errors=(404, 409))
async def answer_survey(call: Call) -> SurveyView:
    return await call.request.app[WORKORDERS].answer_survey(call.body)




class TemplateOut(BaseModel):
    key: str
    text: str
    default: str
    customised: bool


class ItemsOfTemplates(BaseModel):
    items: list[TemplateOut]
    placeholders: dict[str, str]


class TemplateBody(StrictBody):
    key: str = Field(max_length=60)
    text: str | None = Field(None, min_length=1, max_length=500, description="null restores the default")

    @field_validator("key")
    @classmethod
    def known_key(cls, value: str) -> str:
        if value not in DEFAULT_TEMPLATES:
            raise ValueError(f"unknown template; known: {', '.join(DEFAULT_TEMPLATES)}")
        return value

    @field_validator("text")
    @classmethod
    def valid_text(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value


async def _templates(session: AsyncSession) -> ItemsOfTemplates:
    custom = {t.key: t.text for t in await session.scalars(select(MessageTemplate))}
    return ItemsOfTemplates(
        items=[TemplateOut(key=key, text=custom.get(key, default), default=default, customised=key in custom)
               for key, default in DEFAULT_TEMPLATES.items()],
        placeholders=PLACEHOLDERS,
    )


@api.endpoint("GET", "/api/message-templates", summary="Notices sent to residents", roles=ADMIN_ROLES,
              response=ItemsOfTemplates, tag="workorders")
async def list_templates(call: Call) -> ItemsOfTemplates:
    async with call.request.app[WORKORDERS].sessions() as session:
        return await _templates(session)


@api.endpoint("PUT", "/api/message-templates", summary="Change (or restore) a notice's text", roles=ADMIN_ROLES,
              body=TemplateBody, response=ItemsOfTemplates, tag="workorders")
async def change_template(call: Call) -> ItemsOfTemplates:
    body: TemplateBody = call.body
    async with call.request.app[WORKORDERS].sessions.begin() as session:
        template = await session.get(MessageTemplate, body.key)
        audit(call, "template.change", "message_template", body.key,
              changes=changes({"text": template.text if template else None}, {"text": body.text}))(session)
        if body.text is None:
            if template is not None:
                await session.delete(template)
        elif template is None:
            session.add(MessageTemplate(key=body.key, text=body.text, updated_at=utcnow()))
        else:
            template.text, template.updated_at = body.text, utcnow()
        await session.flush()
        return await _templates(session)


class RuleOut(BaseModel):
    id: int
    category_code: str | None
    region_code: str | None
    department_id: int


class RuleBody(StrictBody):
    category_code: str | None = Field(None, max_length=40, description="null: any category")
    region_code: str | None = Field(None, max_length=32, description="null: any region")
    department_id: int = Field(ge=1, le=MAX_ID)


class ItemsOfRules(BaseModel):
    items: list[RuleOut]


def _rule_out(rule: DispatchRule) -> RuleOut:
    return RuleOut(id=rule.id, category_code=rule.category_code, region_code=rule.region_code,
                   department_id=rule.department_id)


@api.endpoint("GET", "/api/dispatch-rules", summary="Which department gets which category in which region",
              roles=frozenset({Role.ADMIN, Role.SUPERVISOR}), response=ItemsOfRules, tag="workorders")
async def list_rules(call: Call) -> ItemsOfRules:
    async with call.request.app[WORKORDERS].sessions() as session:
        rules = await session.scalars(select(DispatchRule).order_by(DispatchRule.id))
        return ItemsOfRules(items=[_rule_out(r) for r in rules])


@api.endpoint("POST", "/api/dispatch-rules", summary="Add a dispatch rule", roles=ADMIN_ROLES, body=RuleBody,
              response=RuleOut, status=201, tag="workorders", errors=(409,))
async def add_rule(call: Call) -> RuleOut:
    body: RuleBody = call.body
    service = call.request.app[WORKORDERS]
    async with service.sessions.begin() as session:
        problems = {}
        if await session.get(Department, body.department_id) is None:
            problems["department_id"] = "unknown"
        if body.category_code is not None and not await session.scalar(
                select(WorkOrderCategory.id).where(WorkOrderCategory.code == body.category_code)):
            problems["category_code"] = "unknown"
        if body.region_code is not None and body.region_code not in service.region_codes:
            problems["region_code"] = "unknown"
        if problems:
            raise Invalid("派单规则引用了不存在的部门、类别或区域", code="invalid_rule", details={"fields": problems})
        if await session.scalar(select(DispatchRule.id).where(
                DispatchRule.category_code.is_(None) if body.category_code is None
                else DispatchRule.category_code == body.category_code,
                DispatchRule.region_code.is_(None) if body.region_code is None
                else DispatchRule.region_code == body.region_code)):
            raise Conflict("已有相同类别与区域的派单规则", code="rule_exists")
        rule = DispatchRule(**body.model_dump())
        session.add(rule)
        await session.flush()
        audit(call, "dispatch_rule.add", "dispatch_rule", rule.id, **body.model_dump())(session)
        return _rule_out(rule)


@api.endpoint("DELETE", "/api/dispatch-rules/{rule_id:\\d+}", summary="Remove a dispatch rule", roles=ADMIN_ROLES,
              status=204, tag="workorders")
async def remove_rule(call: Call) -> None:
    rule_id = call.path["rule_id"]
    await delete_row(call, DispatchRule, rule_id, NotFound("派单规则不存在", code="rule_not_found"),
                     audit(call, "dispatch_rule.remove", "dispatch_rule", rule_id))


async def delete_row(call: Call, model: type, row_id: int, missing: NotFound, audited: Audit | None = None) -> None:
    """Delete one row by id (recording ``audited`` with it), or answer 404."""
    async with call.request.app[WORKORDERS].sessions.begin() as session:
        row = await session.get(model, row_id)
        if row is None:
            raise missing
        await session.delete(row)
        if audited is not None:
            audited(session)
