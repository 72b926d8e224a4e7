"""A merged-away duplicate's messages, flow runs and topic opt-outs go to the survivor.
A run or opt-out the survivor already has for the same flow and trigger (or topic) is
kept once: the survivor's."""

from __future__ import annotations

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from plugin.messaging.models import FlowRun, Message, TopicOptOut
from plugin.profiles.movers import register_mover


async def move_messaging(session: AsyncSession, winner_id: int, loser_id: int) -> None:
    held_run = aliased(FlowRun)
    duplicate_runs = select(FlowRun.id).where(
        FlowRun.profile_id == loser_id,
        select(held_run.id)
        .where(
            held_run.profile_id == winner_id,
            held_run.flow_id == FlowRun.flow_id,
            held_run.trigger_key == FlowRun.trigger_key,
        )
        .exists(),
    )
    await session.execute(
        delete(FlowRun)
        .where(FlowRun.id.in_(duplicate_runs.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    held_opt_out = aliased(TopicOptOut)
    await session.execute(
        delete(TopicOptOut)
        .where(
            TopicOptOut.profile_id == loser_id,
            select(held_opt_out.id)
            .where(
                and_(
                    held_opt_out.profile_id == winner_id,
                    held_opt_out.channel == TopicOptOut.channel,
                    held_opt_out.topic == TopicOptOut.topic,
                )
            )
            .exists(),
        )
        .execution_options(synchronize_session=False)
    )
    for table in (FlowRun, TopicOptOut, Message):
        await session.execute(
            update(table)
            .where(table.profile_id == loser_id)
            .values(profile_id=winner_id)
            .execution_options(synchronize_session=False)
        )


register_mover("messaging", move_messaging)
