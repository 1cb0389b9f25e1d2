"""Deadlines of work orders: a reminder at 80 % of the time allowed, an escalation when it is up.

The timers are APScheduler jobs kept in the hub's own database (table ``apscheduler_jobs``), so
they survive a restart: a job whose time passed while the hub was down fires when it comes back.
Every hub process runs a scheduler on the same table; a job firing twice does no harm, because
:meth:`SlaClock.fire` takes the order's row lock and does each step once per deadline.

The service writes an order's job rows itself, in the transaction that creates or moves the order
(rows in the job store's own format), so an order and its timers are committed together or not at
all, and creating an order does not wait on the job store's lock; :meth:`SlaClock.wakeup` then lets
the scheduler see them. APScheduler's job store is synchronous, so the scheduler runs in its own
thread (with SQLite its database calls would otherwise wait for a lock only the blocked event loop
can release); a job hands its work back to the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from datetime import UTC, datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import Column, Float, LargeBinary, MetaData, Table, Unicode, delete, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from router.logs import get_logger
from router.models import utcnow
from workorders.models import WorkOrder, WorkOrderEvent

log = get_logger(__name__)

REMINDER_SHARE = 0.8
WAKEUP_INTERVAL = 1.0  # seconds
# States in which the clock no longer runs: neither reminded, escalated, nor listed as overdue.
STOPPED = frozenset({"completed", "visited", "closed", "rejected", "cancelled", "merged"})
_JOB_KINDS = ("remind", "escalate")
_ACTIONS = {"remind": "sla_reminder", "escalate": "sla_escalated"}  # the timeline's name of each step
JOB_DEFAULTS = {"coalesce": True, "misfire_grace_time": 7 * 24 * 3600, "max_instances": 1}
# The job store's table (created by migration 0005 with the columns SQLAlchemyJobStore expects).
JOBS = Table("apscheduler_jobs", MetaData(), Column("id", Unicode(191), primary_key=True),
             Column("next_run_time", Float(25)), Column("job_state", LargeBinary, nullable=False))
# The scheduler calls a module-level function with plain arguments (they are stored in the table).
# The first one names the database the job belongs to (several hubs may live in one process, as in
# the tests); this maps it to the running clock of that database.
_clocks: dict[str, SlaClock] = {}


def sync_url(async_url: str) -> str:
    """The job store speaks to the same database through a synchronous driver."""
    url = make_url(async_url)
    driver = {"postgresql+asyncpg": "postgresql+psycopg", "sqlite+aiosqlite": "sqlite"}[url.drivername]
    return url.set(drivername=driver).render_as_string(hide_password=False)


def database_key(async_url: str) -> str:
    """A stable, secret-free name of a database: the same after a restart or a password change."""
    url = make_url(async_url)
    return hashlib.sha256(f"{url.host}:{url.port}/{url.database}".encode()).hexdigest()[:16]


def fire(database: str, kind: str, order_id: int) -> None:
    """A job's entry point, in the scheduler's thread (referenced by name in the job table: keep it)."""
    clock = _clocks.get(database)
    if clock is None or clock.loop is None:
        raise RuntimeError("SLA clock of this database is not running")
    asyncio.run_coroutine_threadsafe(clock.fire(kind, order_id), clock.loop).result(timeout=120)


class _SteadyScheduler(BackgroundScheduler):
    """A scheduler whose thread outlives a database outage.

    APScheduler retries a failed look for due jobs, but not a failure of the queries after it (the next run
    time, moving a job on): one of those ends the scheduler's thread, and no deadline fires again until the
    hub restarts. Here a failed pass is tried again after ``jobstore_retry_interval`` (10 s); a job that
    fired but was not moved on fires again, which :meth:`SlaClock.fire` makes harmless.
    """

    def _process_jobs(self) -> float | None:
        try:
            return super()._process_jobs()
        except Exception as exc:
            log.warning("SLA scheduler pass failed; trying again", error=f"{type(exc).__name__}: {exc}"[:300])
            return self.jobstore_retry_interval


class SlaClock:
    def __init__(self, database_url: str, sessions: Any, publish: Any) -> None:
        self._sessions = sessions
        self._publish = publish
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake_requested = False
        self._waker: asyncio.Task[None] | None = None
        self._database = database_key(database_url)
        self._scheduler = _SteadyScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=sync_url(database_url),
                                                     engine_options={"pool_pre_ping": True})},
            job_defaults=JOB_DEFAULTS,
            timezone="UTC",
        )

    def start(self) -> None:
        _clocks[self._database] = self
        self.loop = asyncio.get_running_loop()
        self._scheduler.start()
        self._waker = asyncio.create_task(self._pass_on_wakeups())

    async def stop(self) -> None:
        if self._waker is not None:
            self._waker.cancel()
        if self._scheduler.running:
            await asyncio.to_thread(self._scheduler.shutdown, wait=True)
        if _clocks.get(self._database) is self:
            del _clocks[self._database]

    async def schedule_in(self, session: AsyncSession, order_id: int, remind_at: datetime, due_at: datetime) -> None:
        """(Re)start an order's clock in the caller's transaction; call :meth:`wakeup` after the commit."""
        await self.cancel_in(session, order_id)
        await session.execute(insert(JOBS), [self._job_row(order_id, kind, at)
                                             for kind, at in (("remind", remind_at), ("escalate", due_at))])

    @staticmethod
    async def cancel_in(session: AsyncSession, order_id: int) -> None:
        """Stop an order's clock in the caller's transaction (timers that already fired are gone anyway)."""
        await session.execute(delete(JOBS).where(JOBS.c.id.in_([_job_id(kind, order_id) for kind in _JOB_KINDS])))

    def wakeup(self) -> None:
        """Ask the scheduler to look at the job table again (new timers may be due before its next wake-up).

        Requests are gathered and passed on at most once per :data:`WAKEUP_INTERVAL`: each look costs the
        scheduler two queries, and a deadline is hours away, so a second's delay is of no consequence.
        """
        self._wake_requested = True

    async def _pass_on_wakeups(self) -> None:
        while True:
            await asyncio.sleep(WAKEUP_INTERVAL)
            if self._wake_requested and self._scheduler.running:
                self._wake_requested = False
                self._scheduler.wakeup()

    def _job_row(self, order_id: int, kind: str, at: datetime) -> dict[str, Any]:
        """A row as ``SQLAlchemyJobStore.add_job`` writes it, with the job defaults the scheduler would apply."""
        job = Job(self._scheduler, id=_job_id(kind, order_id), func=fire, args=(self._database, kind, order_id),
                  kwargs={}, name=f"sla-{kind}", trigger=DateTrigger(run_date=at, timezone=UTC), executor="default",
                  next_run_time=at, **JOB_DEFAULTS)
        return {"id": job.id, "next_run_time": datetime_to_utc_timestamp(at),
                "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)}

    async def fire(self, kind: str, order_id: int) -> None:
        """Record a deadline step once per deadline; an escalation also records a reminder that never came.

        After a hub was down past both times, the two jobs fire together in no set order: the trail still
        reads reminder, then escalation.
        """
        steps = ["remind"] if kind == "remind" else ["remind", "escalate"]
        now = utcnow()
        recorded: list[str] = []
        async with self._sessions.begin() as session:
            order = (await session.execute(
                select(WorkOrder).where(WorkOrder.id == order_id).with_for_update(of=WorkOrder)
            )).unique().scalar_one_or_none()
            if order is None or order.state in STOPPED:
                return
            due = order.sla_due_at.isoformat() if order.sla_due_at else None
            for step in steps:
                action = _ACTIONS[step]
                earlier = await session.scalars(select(WorkOrderEvent.data).where(
                    WorkOrderEvent.order_id == order_id, WorkOrderEvent.action == action))
                if any((data or {}).get("due") == due for data in earlier):
                    continue  # another process, or an earlier run, did it for this deadline (a reopen sets a new one)
                data: dict[str, Any] = {"due": due}
                if step == "escalate":
                    data["priority"] = {"from": order.priority, "to": max(1, order.priority - 1)}
                    order.priority = max(1, order.priority - 1)
                    order.updated_at = now
                session.add(WorkOrderEvent(order_id=order.id, action=action, from_state=order.state,
                                           to_state=order.state, actor_name="时限监控", data=data, at=now))
                await session.flush()
                recorded.append(action)
            number, state, department_id = order.number, order.state, order.department_id
        for action in recorded:
            log.info("work order deadline", step=action, order=number)
            await self._publish("workorder", {"type": action, "order_id": order_id, "number": number,
                                              "state": state, "department_id": department_id})


def _job_id(kind: str, order_id: int) -> str:
    return f"sla-{kind}-{order_id}"

