"""Dead-letter queues on the emulator: looking at them leaves them as they were."""

from __future__ import annotations

import pytest

from trackflow.adapters import aws
from trackflow.operations.deadletters import counts, peek
from trackflow.settings import DLQ_SUFFIX, Lane, Settings, WorkerGroup

pytestmark = pytest.mark.usefixtures("emulator")


def test_peek_reads_each_letter_once_and_leaves_them_all(settings: Settings):
    """Fifteen letters, asked for fifty: each is read once, the look ends, and all fifteen are
    still there for the next look (a look that re-read the same ten never ended)."""
    queue = settings.queue(WorkerGroup.IO, Lane.BULK)
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=queue + DLQ_SUFFIX)["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    for n in range(15):
        sqs.send_message(QueueUrl=url, MessageBody=f"letter {n}")
    letters = peek(settings, queue, limit=50)
    assert sorted(letter.summary for letter in letters) == sorted(f"letter {n}" for n in range(15))
    assert len(peek(settings, queue, limit=50)) == 15
    assert counts(settings)[queue] == 15
    sqs.purge_queue(QueueUrl=url)
