"""Refit a shop's purchase model per currency and keep every customer's predictions.

`refit_installation` is the scheduled job's work: it reads the order figures of all
profiles (columns only, one streamed query: a shop may have a million), fits BG/NBD and
Gamma-Gamma, stores the parameters, and writes only the rows whose rounded predictions
changed. `predict_profiles` is the fold's cheap path: stored parameters, no fit.
A currency with fewer than `MIN_REPEAT_BUYERS` repeat buyers, or whose fit does not
converge, gets the per-customer fallback of plugin/predictions/predict.py instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Float,
    Numeric,
    Table,
    bindparam,
    inspect,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from plugin.db.base import Base, UTCDateTime
from plugin.predictions import bgnbd, gamma_gamma
from plugin.predictions.bgnbd import NotConverged
from plugin.predictions.models import PredictionModel
from plugin.predictions.predict import (
    Inputs,
    Predictions,
    ShopModel,
    floats,
    predict,
    summarise,
    timestamps,
)
from plugin.profiles.models import Profile

logger = logging.getLogger(__name__)

MIN_REPEAT_BUYERS = 30
MAX_FIT_CUSTOMERS = 50_000
PAGE = 10_000
WRITE_BATCH = 2_000

FITTED, TOO_THIN, FAILED = "fitted", "too_thin", "failed"

_INPUTS = (
    Profile.orders_count,
    Profile.paid_orders_count,
    Profile.first_order_at,
    Profile.last_order_at,
    Profile.average_order_value,
    Profile.total_spent,
)
_OUTPUTS = ("p_alive", "predicted_orders_12m", "predicted_value_12m", "predicted_next_order_at")
_STORED = tuple(getattr(Profile, name) for name in _OUTPUTS)


@dataclass(frozen=True)
class _Rows:
    ids: NDArray[np.int64]
    inputs: Inputs
    stored: Predictions  # as in the database, in the same representation as `predict`


async def refit_installation(
    session: AsyncSession, installation_id: int, now: datetime
) -> list[PredictionModel]:
    """Fit every currency of the shop and write the predictions that changed. Flushes,
    never commits."""
    await session.flush()  # the bulk read below goes around the ORM
    currencies = [
        c
        for c in await session.scalars(
            select(Profile.currency)
            .where(
                Profile.installation_id == installation_id,
                Profile.currency.is_not(None),
                Profile.orders_count > 0,
            )
            .distinct()
            .order_by(Profile.currency)
        )
        if c
    ]
    models = []
    for currency in currencies:
        rows = await _load(session, installation_id, currency)
        model, status, message, customers = _fit(rows.inputs, currency, now)
        models.append(
            await _store(session, installation_id, currency, model, status, message, customers, now)
        )
        changed = await _write(session, rows, predict(model, rows.inputs, now))
        logger.info(
            "predictions %s for installation %s: %s, %d rows written",
            currency,
            installation_id,
            status,
            changed,
        )
    await _clear_non_buyers(session, installation_id)
    await session.flush()
    return models


async def write_predictions(
    session: AsyncSession, installation_id: int, currency: str, now: datetime
) -> int:
    """Rewrite one currency's predictions from its stored model (no refit); returns how
    many rows changed."""
    await session.flush()
    model = await stored_model(session, installation_id, currency)
    rows = await _load(session, installation_id, currency)
    return await _write(session, rows, predict(ShopModel.from_row(model), rows.inputs, now))


async def stored_model(
    session: AsyncSession, installation_id: int, currency: str
) -> PredictionModel | None:
    return await session.scalar(
        select(PredictionModel).where(
            PredictionModel.installation_id == installation_id,
            PredictionModel.currency == currency,
        )
    )


async def predict_profiles(
    session: AsyncSession, installation_id: int, profiles: list[Profile], now: datetime
) -> int:
    """After a fold: set the touched profiles' predictions from the stored model (the
    fallback while none is stored). Needs their aggregates up to date; returns how many
    profiles changed."""
    changed = 0
    for currency, group in groupby(
        sorted(profiles, key=lambda p: p.currency or ""), key=lambda p: p.currency
    ):
        members = list(group)
        if currency is None:  # no order: nothing to predict
            predictions = Predictions(*(np.full(len(members), np.nan) for _ in range(4)))
        else:
            model = ShopModel.from_row(await stored_model(session, installation_id, currency))
            predictions = predict(model, Inputs.of(_columns_of(members)), now)
        for i, profile in enumerate(members):
            values = predictions.values(i)
            if tuple(getattr(profile, name) for name in _OUTPUTS) != values:
                for name, value in zip(_OUTPUTS, values, strict=True):
                    setattr(profile, name, value)
                changed += 1
    return changed


def _columns_of(profiles: list[Profile]) -> list[list[Any]]:
    return [[getattr(p, column.key) for p in profiles] for column in _INPUTS]


def _fit(inputs: Inputs, currency: str, now: datetime) -> tuple[ShopModel, str, str, int]:
    """The model, its status, the sentence staff read, and how many buyers it rests on."""
    summary = summarise(inputs, now)
    buyers = int(summary.buyer.sum())
    repeat = int((summary.buyer & (summary.x >= 1)).sum())
    fallback = "predictions come from each customer's own rhythm."
    if repeat < MIN_REPEAT_BUYERS:
        return (
            ShopModel(None),
            TOO_THIN,
            f"Only {repeat} customer{'s' if repeat != 1 else ''} ordered more than once in "
            f"{currency}; the model needs at least {MIN_REPEAT_BUYERS}. Until then, {fallback}",
            buyers,
        )
    sample = _sample(np.flatnonzero(summary.buyer))
    # Identical (x, t_x, T) rows, to the day, are fitted once with a weight.
    fit_rows = np.stack([summary.x, np.round(summary.t_x), np.round(summary.T)], axis=1)[sample]
    unique, counts = np.unique(fit_rows, axis=0, return_counts=True)
    try:
        purchases = bgnbd.fit(unique[:, 0], unique[:, 1], unique[:, 2], counts)
    except NotConverged as error:
        return (
            ShopModel(None),
            FAILED,
            f"The purchase model could not be fitted to the {currency} orders ({error}). "
            f"For now, {fallback}",
            buyers,
        )
    message = (
        f"Fitted on {buyers:,} customers who ordered in {currency}, "
        f"{repeat:,} of them more than once."
    )
    # Gamma-Gamma on every buyer with a paid order: m is the profile's average check over
    # all its paid orders (the first one included, unlike the paper's repeat-only), n those.
    paid = _sample(np.flatnonzero(summary.buyer & (inputs.paid > 0) & (inputs.average_check > 0)))
    spend = None
    if paid.size >= MIN_REPEAT_BUYERS:
        try:
            spend = gamma_gamma.fit(inputs.paid[paid], inputs.average_check[paid])
        except NotConverged:
            pass
    if spend is None:
        message += " Too few paid orders to model order values: own average checks are used."
    return ShopModel(purchases, spend), FITTED, message, buyers


def _sample(indices: NDArray[np.intp]) -> NDArray[np.intp]:
    """At most `MAX_FIT_CUSTOMERS`, drawn with a fixed seed: plenty for seven parameters,
    keeps a million-customer fit to seconds, and the same data give the same fit."""
    if indices.size <= MAX_FIT_CUSTOMERS:
        return indices
    chosen = np.random.default_rng(0).choice(indices, MAX_FIT_CUSTOMERS, replace=False)
    return np.sort(chosen)


async def _store(
    session: AsyncSession,
    installation_id: int,
    currency: str,
    model: ShopModel,
    status: str,
    message: str,
    customers: int,
    now: datetime,
) -> PredictionModel:
    row = await stored_model(session, installation_id, currency)
    if row is None:
        row = PredictionModel(installation_id=installation_id, currency=currency)
        session.add(row)
    row.status, row.parameters, row.message = status, model.parameters(), message
    row.customers, row.fitted_at = customers, now
    await session.flush()
    return row


async def _load(session: AsyncSession, installation_id: int, currency: str) -> _Rows:
    """Inputs and stored predictions of every profile in the currency: one streamed query,
    turned column by column into arrays (no ORM objects, no row objects kept)."""
    table = _profiles()
    columns = [
        table.c.id,
        *(_raw(table.c[c.key]) for c in _INPUTS),
        *(_raw(table.c[n]) for n in _OUTPUTS),
    ]
    connection = await session.connection()
    ids: list[NDArray[np.int64]] = []
    inputs: list[Inputs] = []
    stored: list[Predictions] = []
    result = await connection.stream(
        select(*columns)
        .where(table.c.installation_id == installation_id, table.c.currency == currency)
        .order_by(table.c.id)  # a stable order: the fit's sample depends on it
    )
    async for page in result.partitions(PAGE):
        values = list(zip(*page, strict=True))
        ids.append(np.asarray(values[0], dtype=np.int64))
        inputs.append(Inputs.of(values[1:7]))
        p_alive, orders_12m, value_12m, next_at = values[7:]
        stored.append(
            Predictions(floats(p_alive), floats(orders_12m), floats(value_12m), timestamps(next_at))
        )
    return _Rows(
        np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
        Inputs(*(_concat([getattr(i, f) for i in inputs]) for f in Inputs.__dataclass_fields__)),
        Predictions(
            *(_concat([getattr(s, f) for s in stored]) for f in Predictions.__dataclass_fields__)
        ),
    )


def _raw(column: Column[Any]) -> ColumnElement[Any]:
    """Skip the per-value Python conversions a million rows cannot afford: money as float,
    times as the driver gives them (naive UTC on SQLite; `timestamps` reads both)."""
    if isinstance(column.type, UTCDateTime):
        return type_coerce(column, DateTime(timezone=True)).label(column.key)
    if isinstance(column.type, Numeric):
        return type_coerce(column, Float()).label(column.key)
    return column


def _profiles() -> Table:
    return Base.metadata.tables[Profile.__tablename__]


def _concat(parts: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def _differs(new: NDArray[np.float64], old: NDArray[np.float64]) -> NDArray[np.bool_]:
    same: NDArray[np.bool_] = (new == old) | (np.isnan(new) & np.isnan(old))
    return ~same


async def _write(session: AsyncSession, rows: _Rows, new: Predictions) -> int:
    """UPDATE only the rows whose predictions changed, in batches by primary key; profiles
    loaded in the session are given the new values too."""
    changed = np.flatnonzero(
        _differs(new.p_alive, rows.stored.p_alive)
        | _differs(new.orders_12m, rows.stored.orders_12m)
        | _differs(new.value_12m, rows.stored.value_12m)
        | _differs(new.next_ts, rows.stored.next_ts)
    )
    if changed.size == 0:
        return 0
    table = _profiles()
    statement = (
        update(table)
        .where(table.c.id == bindparam("profile_id"))
        .values({name: bindparam(f"new_{name}") for name in _OUTPUTS})
    )
    loaded = {
        state.identity[0]: obj
        for obj in session.identity_map.values()
        if isinstance(obj, Profile) and (state := inspect(obj)).identity
    }
    for start in range(0, changed.size, WRITE_BATCH):
        params = []
        for i in changed[start : start + WRITE_BATCH]:
            values = new.values(int(i))
            profile_id = int(rows.ids[i])
            params.append(
                {"profile_id": profile_id}
                | {f"new_{n}": v for n, v in zip(_OUTPUTS, values, strict=True)}
            )
            if (profile := loaded.get(profile_id)) is not None:
                for name, value in zip(_OUTPUTS, values, strict=True):
                    set_committed_value(profile, name, value)
        await session.execute(statement, params)
    return int(changed.size)


async def _clear_non_buyers(session: AsyncSession, installation_id: int) -> int:
    """Profiles left without orders (or without a currency) lose their predictions."""
    result = await session.execute(
        update(Profile)
        .where(
            Profile.installation_id == installation_id,
            or_(
                Profile.currency.is_(None),
                Profile.orders_count <= 0,
                Profile.first_order_at.is_(None),
                Profile.last_order_at.is_(None),
            ),
            or_(*(column.is_not(None) for column in _STORED)),
        )
        .values({name: None for name in _OUTPUTS})
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
