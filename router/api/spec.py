"""Declared endpoints: one place that knows each route's roles, input and output models.

Handlers are registered with :meth:`Api.endpoint`; the wrapper authenticates, checks the role,
parses path, query and JSON body with pydantic, and serialises the result. The same declarations
produce the OpenAPI 3 document, so the document cannot drift from the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from router.access import Principal
from router.bodies import has_nul, loads_strict, read_body
from router.errors import Forbidden, Invalid, TooLarge, Unauthorized, UnsupportedMediaType
from router.models import Role
from router.ratelimit import is_limited
from router.schemas import ErrorBody

if TYPE_CHECKING:
    from router.hub import Hub

JSON_BODY_MAX_BYTES = 64 * 1024
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns; larger ones cannot exist
HUB: web.AppKey[Hub] = web.AppKey("hub")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal")
PATH_PARAM = re.compile(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})*))?\}")
UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(slots=True)
class Call:
    """What a handler receives: the request, the caller and the validated inputs."""

    request: web.Request
    principal: Principal | None
    body: Any = None
    query: Any = None
    path: dict[str, Any] = field(default_factory=dict)  # ints for ``{x:\\d+}``, strings otherwise

    @property
    def user(self) -> Principal:
        assert self.principal is not None
        return self.principal


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: frozenset[Role] | None  # None: public
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    tag: str
    errors: tuple[int, ...]
    upload: bool  # the handler reads one multipart/form-data ``file`` part itself

    @property
    def path_params(self) -> list[str]:
        return [name for name, _ in PATH_PARAM.findall(self.path)]

    @property
    def text_params(self) -> dict[str, str]:
        """The path parameters that are not ids (``\\d+``), with their patterns: passed on as strings."""
        return {name: pattern for name, pattern in PATH_PARAM.findall(self.path) if pattern != r"\d+"}


def validation_details(exc: ValidationError) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "body"
        fields[location] = error["msg"]
    return {"fields": fields}


async def read_json(request: web.Request, limit: int = JSON_BODY_MAX_BYTES) -> Any:
    """The request's JSON body, with 413/415/400 errors for what is too large, not JSON or malformed."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"请求体超过 {limit} 字节")
    if request.content_type != "application/json":
        raise UnsupportedMediaType("请求体必须是 application/json", code="unsupported_media_type")
    raw = await read_body(request, limit)
    return loads_strict(raw) if raw else None


def _path_schema(pattern: str | None) -> dict[str, Any]:
    """The schema of a path parameter: an id without a pattern, else a string of that pattern."""
    if pattern is None:
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    schema = {"type": "string", "pattern": f"^{pattern}$"}
    return {**schema, "format": "uuid"} if pattern == UUID_PATTERN else schema


class Api:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def endpoint(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        roles: frozenset[Role] | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        tag: str = "hub",
        errors: tuple[int, ...] = (),
        upload: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(method, path, handler, summary, roles, body, query, response, status, tag, errors, upload)
            )
            return handler

        return register

    def add_routes(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, self._wrap(endpoint))

    @staticmethod
    def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            principal: Principal | None = request.get(PRINCIPAL_KEY)
            if endpoint.roles is not None:
                if principal is None:
                    raise Unauthorized("请先登录", code="not_authenticated")
                if principal.role not in endpoint.roles:
                    raise Forbidden("当前角色无权访问此接口", code="role_forbidden")
            call = Call(request=request, principal=principal)
            for name in endpoint.path_params:
                if name in endpoint.text_params:
                    call.path[name] = request.match_info[name]
                    continue
                value = int(request.match_info[name])
                if value > MAX_ID:
                    raise web.HTTPNotFound()
                call.path[name] = value
            if endpoint.query is not None:
                if any(has_nul(v) for v in request.query.values()):
                    raise Invalid("查询参数中不能含有 NUL 字符", code="nul_character")
                try:
                    call.query = endpoint.query.model_validate(dict(request.query))
                except ValidationError as exc:
                    raise Invalid("查询参数无效", details=validation_details(exc)) from exc
            if endpoint.body is not None:
                data = await read_json(request)
                try:
                    call.body = endpoint.body.model_validate(data if data is not None else {})
                except ValidationError as exc:
                    raise Invalid("请求参数无效", details=validation_details(exc)) from exc
            result = await endpoint.handler(call)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None:
                return web.Response(status=204)
            payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
            return web.json_response(payload, status=endpoint.status, dumps=_dumps)

        return handle

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared endpoint."""
        models: dict[str, type[BaseModel]] = {"ErrorBody": ErrorBody}
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.endpoints:
            path = PATH_PARAM.sub(r"{\1}", endpoint.path)
            operation: dict[str, Any] = {
                "operationId": f"{endpoint.method.lower()}_{endpoint.handler.__name__}",
                "summary": endpoint.summary,
                "tags": [endpoint.tag],
                "parameters": [
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "schema": _path_schema(endpoint.text_params.get(name)),
                    }
                    for name in endpoint.path_params
                ],
                "responses": {},
            }
            if endpoint.roles is not None:
                operation["security"] = [{"sessionCookie": []}, {"bearerToken": []}]
                operation["x-roles"] = sorted(endpoint.roles)
            else:
                operation["security"] = []
            if endpoint.query is not None:
                schema = endpoint.query.model_json_schema()
                required = set(schema.get("required", []))
                for name, prop in schema.get("properties", {}).items():
                    operation["parameters"].append(
                        {"name": name, "in": "query", "required": name in required, "schema": prop}
                    )
            if endpoint.body is not None:
                models[endpoint.body.__name__] = endpoint.body
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(endpoint.body)}},
                }
            if endpoint.upload:
                file_part = {"type": "object", "required": ["file"],
                             "properties": {"file": {"type": "string", "format": "binary"}}}
                operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": file_part}}}
            success: dict[str, Any] = {"description": "OK"}
            if endpoint.response is not None:
                models[endpoint.response.__name__] = endpoint.response
                success["content"] = {"application/json": {"schema": _ref(endpoint.response)}}
            operation["responses"][str(endpoint.status)] = success
            error_codes = set(endpoint.errors)
            if endpoint.roles is not None:
                error_codes |= {401, 403}
            if endpoint.body is not None:
                error_codes |= {400, 413, 415, 422}
            if endpoint.upload:
                error_codes |= {400, 413, 415}
            if endpoint.query is not None:
                error_codes.add(422)
            if endpoint.path_params:
                error_codes.add(404)
            if is_limited(endpoint.method, endpoint.path):
                error_codes.add(429)
            for code in sorted(error_codes):
                operation["responses"][str(code)] = {
                    "description": _ERROR_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": _ref(ErrorBody)}},
                }
            paths.setdefault(path, {})[endpoint.method.lower()] = operation
        schemas: dict[str, Any] = {}
        for model in models.values():
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "hub_session"},
                    "bearerToken": {"type": "http", "scheme": "bearer"},
                },
            },
        }


_ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Not signed in",
    403: "Role or ownership does not allow this",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Wrong content type",
    422: "Invalid fields",
    429: "Too many requests; Retry-After says when to try again",
    503: "Not ready",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
