"""The MQTT transport on its own: back-pressure keeps the queue bounded without
losing a message, QoS 1 in order, manual acks, clean close."""

from __future__ import annotations

import asyncio

import aiomqtt

from devices.transport.mqtt import MqttSubscription, client_id
from tests.support.mosquitto import MosquittoBroker


async def test_backpressure_bounds_the_queue_and_loses_nothing(
    mosquitto_broker: MosquittoBroker,
) -> None:
    settings = mosquitto_broker.settings()
    total = 2000
    async with MqttSubscription(settings, device_id="bp", topics=["bp/#"], queue_size=50) as sub:
        assert sub.client_id == client_id(settings, "bp") == "pickedge-test-bp"
        async with aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            max_inflight_messages=1000,
        ) as pub:
            pub.pending_calls_threshold = 1 << 30
            publishing = asyncio.gather(
                *(pub.publish(f"bp/{i % 3}", str(i).encode(), qos=1) for i in range(total))
            )
            received: list[int] = []
            deepest = 0
            async for message in sub.messages():
                assert sub._queue is not None
                deepest = max(deepest, sub._queue.qsize())
                received.append(int(message.payload))
                if len(received) % 100 == 0:
                    await asyncio.sleep(0.01)  # a slow commit now and then
                sub.ack(message)
                if len(received) == total:
                    break
            await publishing
    assert received == list(range(total))  # one publisher, QoS 1: in order, once each
    assert deepest <= 50
    assert sub.pauses > 0
    assert sub._queue is not None and not sub._queue.overflowed
