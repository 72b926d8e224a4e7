"""Job plumbing: coalescing under load, and the sender that keeps Redis off the web path."""

from __future__ import annotations

import threading

import pytest

from jobs import runtime
from plugin.kit.after_commit import Job


def test_coalesce_keeps_first_of_each_key_and_every_unkeyed_job() -> None:
    jobs = [
        Job("inbox.fold", {"event_id": 1, "installation_id": 7}, "fold:7"),
        Job("mail.send", {"id": 1}),
        Job("inbox.fold", {"event_id": 2, "installation_id": 7}, "fold:7"),
        Job("inbox.fold", {"event_id": 3, "installation_id": 8}, "fold:8"),
        Job("mail.send", {"id": 1}),
    ]
    assert runtime.coalesce(jobs) == [jobs[0], jobs[1], jobs[3], jobs[4]]


def test_background_sender_sends_everything_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Job] = []
    gate, sending = threading.Event(), threading.Event()

    def slow_send(job: Job) -> None:
        sending.set()
        gate.wait(5)  # Redis is slow: jobs pile up behind the first one
        sent.append(job)

    monkeypatch.setattr(runtime, "send", slow_send)
    sender = runtime.BackgroundSender()
    first = Job("inbox.fold", {"event_id": 0, "installation_id": 1}, "fold:1")
    sender.submit(first)
    assert sending.wait(5)
    piled = [Job("inbox.fold", {"event_id": i, "installation_id": 1}, "fold:1") for i in (1, 2)]
    other = Job("inbox.fold", {"event_id": 3, "installation_id": 2}, "fold:2")
    for job in [*piled, other]:
        sender.submit(job)
    gate.set()
    sender.close()
    # The first went alone; the pile behind it became one job per installation.
    assert sent[0] == first
    assert [j.coalesce_key for j in sent[1:]] == ["fold:1", "fold:2"]


def test_failing_broker_does_not_stop_the_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Job] = []

    def broken(job: Job) -> None:
        calls.append(job)
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(runtime, "send", broken)
    sender = runtime.BackgroundSender()
    sender.submit(Job("a"))
    sender.submit(Job("b"))
    sender.close()
    assert [job.actor for job in calls] == ["a", "b"]
