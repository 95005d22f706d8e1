#!/usr/bin/env python3
"""Per-minute chat analytics read straight from the event log (docs/events.md).

Attaches its own durable pull consumer to the JetStream stream that holds every room event and
prints, for each minute (by the events' `at`, UTC), the CHAT messages per room and the number of
active users. It never disturbs the chat services: the stream keeps every event whatever any
consumer acknowledges (limits retention), and this consumer has a name of its own.

Exactly once per minute, across restarts: the consumer acknowledges (ack policy "all") the last
event of a minute only after that minute is printed, so a restarted run is given again every
event of the minutes it had not printed and counts them afresh. A crash between printing and
acknowledging prints that minute once more; key the output by minute to keep the last.

    pip install -r requirements.txt
    python chat_analytics.py                        # the local stack of scripts/up
    python chat_analytics.py --idle-exit 5 --json   # print what is there, then stop
"""

import argparse
import asyncio
import datetime
import json
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import msgpack
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

# Event types in which the actor did something in the room. OUT is left out: the receipts worker
# writes it on behalf of users whose edge died.
ACTIVE_TYPES = {"ROOM_CREATED", "CHAT", "INFO", "INVITE", "LEAVE", "DELETE", "REACTION", "EDIT"}
# Every type this consumer knows; others come from a newer writer and are skipped (docs/events.md).
KNOWN_TYPES = ACTIVE_TYPES | {"OUT"}

MINUTE_MS = 60_000
# A minute is printed once an event of a later minute arrives, or, when the log is quiet, this
# long after the minute ended by this machine's clock (edges' clocks differ a little).
QUIET_GRACE_MS = 5_000
# Events of the open minute stay unacknowledged; they must not be given again meanwhile.
ACK_WAIT_SECONDS = 300
# A minute's events are held unacknowledged until it is printed, however many there are.
UNLIMITED = -1
FETCH_BATCH = 256


@dataclass
class Minute:
    """The tallies of one minute, and the last event counted in it."""

    start_ms: int
    messages_per_room: Counter = field(default_factory=Counter)
    active_users: set = field(default_factory=set)
    events: int = 0
    skipped: int = 0
    last_msg: Optional[object] = None

    def count(self, envelope: Optional[dict], msg) -> None:
        self.events += 1
        self.last_msg = msg
        if envelope is None:
            self.skipped += 1
            return
        kind = envelope["event"].get("type")
        if kind not in KNOWN_TYPES:
            self.skipped += 1
            return
        if kind == "CHAT":
            self.messages_per_room[str(uuid.UUID(bytes=envelope["room_id"]))] += 1
        if kind in ACTIVE_TYPES:
            self.active_users.add(envelope["actor"])

    def report(self) -> dict:
        start = datetime.datetime.fromtimestamp(self.start_ms / 1000, datetime.timezone.utc)
        return {
            "minute": start.strftime("%Y-%m-%dT%H:%M:00Z"),
            "messagesPerRoom": dict(sorted(self.messages_per_room.items())),
            "activeUsers": len(self.active_users),
            "events": self.events,
            "skipped": self.skipped,
        }


def decode(data: bytes) -> Optional[dict]:
    """The envelope in `data`, or None when it is not one (reported, then skipped)."""
    try:
        envelope = msgpack.unpackb(data, raw=False)
    except ValueError as error:
        print(f"skipping an event that is not MessagePack: {error}", file=sys.stderr)
        return None
    valid = (isinstance(envelope, dict)
             and isinstance(envelope.get("event"), dict)
             and isinstance(envelope.get("room_id"), bytes) and len(envelope["room_id"]) == 16
             and isinstance(envelope.get("actor"), str)
             and isinstance(envelope.get("at"), int))
    if not valid:
        print("skipping an event that is not an envelope (docs/events.md)", file=sys.stderr)
        return None
    return envelope


def print_minute(minute: Minute, as_json: bool) -> None:
    report = minute.report()
    if as_json:
        print(json.dumps(report, ensure_ascii=False), flush=True)
        return
    print(f"{report['minute']}  active users {report['activeUsers']}"
          f"  events {report['events']}  skipped {report['skipped']}", flush=True)
    for room, messages in report["messagesPerRoom"].items():
        print(f"{report['minute']}  room {room}  messages {messages}", flush=True)


async def attach(js, args) -> None:
    """Creates the durable consumer unless it exists (its position survives restarts)."""
    try:
        await js.consumer_info(args.stream, args.durable)
        return
    except NotFoundError:
        pass
    deliver = DeliverPolicy.ALL if args.deliver == "all" else DeliverPolicy.NEW
    await js.add_consumer(args.stream, ConsumerConfig(
        durable_name=args.durable,
        description="per-minute chat analytics (examples/analytics)",
        filter_subject=f"{args.prefix}chat.room.*",
        deliver_policy=deliver,
        ack_policy=AckPolicy.ALL,
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=UNLIMITED,
    ))


async def close(minute: Minute, as_json: bool) -> None:
    """Prints a minute, then acknowledges every event up to its last, and waits until the
    server has recorded that."""
    print_minute(minute, as_json)
    if minute.last_msg is not None:
        await minute.last_msg.ack_sync()


async def run(args) -> None:
    nc = await nats.connect(servers=[args.server], name=f"chat-analytics {args.durable}")
    try:
        js = nc.jetstream()
        await attach(js, args)
        sub = await js.pull_subscribe_bind(durable=args.durable, stream=args.stream)
        open_minute: Optional[Minute] = None
        last_sequence = 0
        quiet_since = asyncio.get_running_loop().time()
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=1.0)
            except asyncio.TimeoutError:
                # nats-py raises its own TimeoutError (a subclass) or asyncio's, depending on
                # where in the pull the time ran out: both mean no events this round.
                msgs = []
            now_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
            if not msgs:
                quiet_for = asyncio.get_running_loop().time() - quiet_since
                if args.idle_exit is not None and quiet_for >= args.idle_exit:
                    if open_minute is not None:
                        await close(open_minute, args.json)
                    return
                if open_minute and now_ms >= open_minute.start_ms + MINUTE_MS + QUIET_GRACE_MS:
                    await close(open_minute, args.json)
                    open_minute = None
                continue
            quiet_since = asyncio.get_running_loop().time()
            for msg in msgs:
                sequence = msg.metadata.sequence.stream
                if sequence <= last_sequence:
                    continue  # given again after ack_wait: already counted
                last_sequence = sequence
                envelope = decode(msg.data)
                start = envelope["at"] // MINUTE_MS * MINUTE_MS if envelope else None
                if open_minute is None:
                    open_minute = Minute(start if start is not None else now_ms // MINUTE_MS * MINUTE_MS)
                elif start is not None and start > open_minute.start_ms:
                    await close(open_minute, args.json)
                    open_minute = Minute(start)
                # An event of an earlier minute (edges' clocks differ) counts in the open one.
                open_minute.count(envelope, msg)
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="nats://127.0.0.1:4222", help="NATS URL")
    parser.add_argument("--stream", default="CHAT", help="the event log's stream (nats.stream)")
    parser.add_argument("--prefix", default="",
                        help="subject prefix of the deployment (nats.subject_prefix), e.g. 't1.'")
    parser.add_argument("--durable", default="analytics",
                        help="this consumer's durable name; never one of the services'")
    parser.add_argument("--deliver", choices=["all", "new"], default="all",
                        help="where a new consumer starts: the whole log, or from now on")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="print the open minute and stop after SECONDS without events")
    parser.add_argument("--json", action="store_true", help="one JSON object per minute")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
