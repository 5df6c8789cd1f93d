"""The peer: the page view and the fan-out written the idiomatic SQLAlchemy 2 ORM way.

Declarative models over statusdb's own tables, relationships loaded with `selectinload` (one
query per relationship, the ORM's recommended eager loading for collections), a Session per
request from a `sessionmaker`, and the engine's own connection pool. The result is decoded into
the very same attrs values statusdb returns (`statusdb.views.PageView`,
`statusdb.workers.outbox.Recipient`), so both sides do the same work for the caller.

Used only by the benchmark (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import attrs
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import (
    ForeignKey,
    Integer,
    LargeBinary,
    Text,
    and_,
    create_engine,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)

from statusdb.domain import tokens
from statusdb.domain.types import ComponentView, StatusPageWithComponents, worst_status
from statusdb.status_incidents import decode_updates
from statusdb.views import IncidentView, MaintenanceView, PageView
from statusdb.workers.outbox import ClaimedChange, Recipient

ACTIVE_STATUSES = ("INVESTIGATING", "IDENTIFIED", "MONITORING")


class Base(DeclarativeBase):
    pass


class StatusPage(Base):
    __tablename__ = "status_page"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    is_public: Mapped[bool]
    access_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    team_id: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    components: Mapped[list[Component]] = relationship(
        order_by="(Component.display_order, Component.name, Component.id)",
        viewonly=True,
    )
    incidents: Mapped[list[StatusIncident]] = relationship(
        order_by="(StatusIncident.created_at.desc(), StatusIncident.id.desc())", viewonly=True
    )
    maintenance_windows: Mapped[list[MaintenanceWindow]] = relationship(
        order_by="(MaintenanceWindow.start_time, MaintenanceWindow.id)", viewonly=True
    )


class Component(Base):
    __tablename__ = "status_page_component"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    status_page_id: Mapped[str] = mapped_column(ForeignKey("status_page.id"))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    display_order: Mapped[int] = mapped_column(Integer)
    team_id: Mapped[str | None] = mapped_column(Text)
    service_identifier: Mapped[str | None] = mapped_column(Text)
    current_status: Mapped[str] = mapped_column(Text)
    manual_status: Mapped[str] = mapped_column(Text)
    status_updated_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class StatusIncident(Base):
    __tablename__ = "status_incident"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    status_page_id: Mapped[str] = mapped_column(ForeignKey("status_page.id"))
    incident_id: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    affected_component_ids: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
    updates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_window"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    status_page_id: Mapped[str] = mapped_column(ForeignKey("status_page.id"))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[dt.datetime]
    end_time: Mapped[dt.datetime]
    recurrence_rule: Mapped[str | None] = mapped_column(Text)
    auto_update_status: Mapped[bool]
    notify_subscribers: Mapped[bool]
    status: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    component_links: Mapped[list[MaintenanceWindowComponent]] = relationship(
        order_by="MaintenanceWindowComponent.component_id", viewonly=True
    )


class MaintenanceWindowComponent(Base):
    __tablename__ = "maintenance_window_component"

    maintenance_window_id: Mapped[str] = mapped_column(
        ForeignKey("maintenance_window.id"), primary_key=True
    )
    component_id: Mapped[str] = mapped_column(
        ForeignKey("status_page_component.id"), primary_key=True
    )


class Subscriber(Base):
    __tablename__ = "status_subscriber"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    status_page_id: Mapped[str] = mapped_column(ForeignKey("status_page.id"))
    channel: Mapped[str] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(Text)
    component_ids: Mapped[list[str]] = mapped_column(ARRAY(Text))
    notify_on: Mapped[list[str]] = mapped_column(ARRAY(Text))
    is_verified: Mapped[bool]
    is_active: Mapped[bool]
    created_at: Mapped[dt.datetime]


def make_engine(dsn: str, **kwargs: Any) -> Engine:
    """An engine on the libpq conninfo `dsn`, through psycopg 3 (`postgresql+psycopg`)."""
    params = conninfo_to_dict(dsn)
    url = URL.create(
        "postgresql+psycopg",
        username=str(params["user"]),
        host=str(params["host"]),
        port=int(str(params["port"])),
        database=str(params["dbname"]),
    )
    return create_engine(url, **kwargs)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def page_view(
    sessions: sessionmaker[Session],
    slug: str,
    *,
    token: str | None = None,
    maintenance_horizon: dt.timedelta = dt.timedelta(days=7),
    maintenance_limit: int = 20,
) -> PageView | None:
    """The page view, as an ORM application would write it: one Session per request."""
    token_hash = tokens.page_digest(token) if token is not None else None
    upcoming = or_(
        MaintenanceWindow.status == "IN_PROGRESS",
        and_(
            MaintenanceWindow.status == "SCHEDULED",
            MaintenanceWindow.start_time < func.now() + maintenance_horizon,
        ),
    )
    stmt = (
        select(StatusPage)
        .where(
            StatusPage.slug == slug,
            or_(StatusPage.is_public, StatusPage.access_token_hash == token_hash),
        )
        .options(
            selectinload(StatusPage.components),
            selectinload(StatusPage.incidents.and_(StatusIncident.status.in_(ACTIVE_STATUSES))),
            selectinload(StatusPage.maintenance_windows.and_(upcoming)).selectinload(
                MaintenanceWindow.component_links
            ),
        )
    )
    with sessions() as session:
        page = session.scalars(stmt).one_or_none()
        if page is None:
            return None
        return _to_view(page, maintenance_limit)


def _to_view(page: StatusPage, maintenance_limit: int) -> PageView:
    components = tuple(
        ComponentView(
            c.id,
            c.name,
            c.description,
            c.display_order,
            c.current_status,  # type: ignore[arg-type]
            c.status_updated_at,
        )
        for c in page.components
    )
    incidents = tuple(
        IncidentView(
            i.id,
            i.title,
            i.message,
            i.severity,  # type: ignore[arg-type]
            i.status,  # type: ignore[arg-type]
            tuple(i.affected_component_ids),
            i.created_at,
            i.updated_at,
            decode_updates(i.updates),
        )
        for i in page.incidents
    )
    maintenance = tuple(
        MaintenanceView(
            w.id,
            w.title,
            w.description,
            w.status,  # type: ignore[arg-type]
            w.start_time,
            w.end_time,
            tuple(link.component_id for link in w.component_links),
        )
        for w in page.maintenance_windows[:maintenance_limit]
    )
    changes = [page.updated_at]
    changes += [c.status_updated_at for c in components]
    changes += [i.updated_at for i in incidents]
    view = StatusPageWithComponents(
        id=page.id,
        name=page.name,
        description=page.description,
        slug=page.slug,
        is_public=page.is_public,
        components=components,
        overall_status=worst_status([c.current_status for c in components]),
        updated_at=max(changes),
    )
    # Fields a page view may carry beyond the rendering (the snapshot's version and
    # fresh-until instant, issue 10) are not the peer's to know: left None, and the benchmark
    # compares the rest (`same_view`).
    extra: tuple[attrs.Attribute[Any], ...] = attrs.fields(PageView)[3:]
    unknown: dict[str, Any] = {f.name: None for f in extra if f.default is attrs.NOTHING}
    return PageView(view, incidents, maintenance, **unknown)


def same_view(ours: PageView | None, theirs: PageView | None) -> bool:
    """Whether the two views show the same page (the fields the peer renders)."""
    if ours is None or theirs is None:
        return ours is theirs
    return (ours.page, ours.active_incidents, ours.upcoming_maintenance) == (
        theirs.page,
        theirs.active_incidents,
        theirs.upcoming_maintenance,
    )


def recipients(
    sessions: sessionmaker[Session], claimed: ClaimedChange, *, yield_per: int = 5000
) -> Iterator[Recipient]:
    """The fan-out, as an ORM application would stream it: `yield_per` (a server-side cursor)."""
    types = list(claimed.notify_types)
    if not types:
        return
    stmt = (
        select(Subscriber)
        .where(
            Subscriber.status_page_id == claimed.status_page_id,
            Subscriber.is_active,
            Subscriber.is_verified,
            or_(
                Subscriber.component_ids == [],
                Subscriber.component_ids.contains([claimed.component_id]),
            ),
            Subscriber.notify_on.overlap(types),
        )
        .execution_options(yield_per=yield_per)
    )
    with sessions() as session:
        for subscriber in session.scalars(stmt):
            yield Recipient(subscriber.id, subscriber.channel, subscriber.destination)  # type: ignore[arg-type]
