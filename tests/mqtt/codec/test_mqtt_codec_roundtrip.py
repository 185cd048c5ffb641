"""Round trips of every packet type in both versions, and streams split anywhere."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mqtt_codec_strategies import (
    client_packets,
    client_streams,
    connects,
    server_packets,
    versions,
)

from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import MQTT_5, Packet, Publish


def _one(decoder: Decoder, data: bytes) -> Packet:
    packets = decoder.feed(data)
    assert len(packets) == 1
    return packets[0]


@given(st.data())
def test_every_client_packet_round_trips(data: st.DataObject) -> None:
    version = data.draw(versions)
    packet = data.draw(client_packets(version))
    decoder = Decoder(version=version)
    assert _one(decoder, encode(packet, version)) == packet


@given(st.data())
def test_every_server_packet_round_trips(data: st.DataObject) -> None:
    version = data.draw(versions)
    packet = data.draw(server_packets(version))
    decoder = Decoder(version=version, from_client=False)
    assert _one(decoder, encode(packet, version)) == packet


@given(st.data())
def test_connect_round_trips_and_sets_the_version(data: st.DataObject) -> None:
    version = data.draw(versions)
    packet = data.draw(connects(version))
    decoder = Decoder()
    assert decoder.version is None
    assert _one(decoder, encode(packet, version)) == packet
    assert decoder.version == version


@settings(max_examples=150)
@given(client_streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_every_split_of_a_stream_parses_the_same(
    stream: tuple[int, list[Packet]], cuts: list[int]
) -> None:
    version, packets = stream
    wire = b"".join(encode(packet, version) for packet in packets)
    points = sorted({cut % (len(wire) + 1) for cut in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    decoder = Decoder()
    decoded: list[Packet] = []
    for chunk in chunks:
        decoded.extend(decoder.feed(chunk))
    assert decoded == packets
    assert decoder.version == version


@given(client_streams())
def test_a_stream_fed_byte_by_byte_parses_the_same(stream: tuple[int, list[Packet]]) -> None:
    version, packets = stream
    wire = b"".join(encode(packet, version) for packet in packets)
    decoder = Decoder()
    decoded: list[Packet] = []
    for index in range(len(wire)):
        decoded.extend(decoder.feed(memoryview(wire)[index : index + 1]))
    assert decoded == packets


def test_decoded_publishes_are_the_frozen_packet_class() -> None:
    wire = encode(Publish("a/b", b"x", 1, packet_id=9), MQTT_5)
    (packet,) = Decoder(version=MQTT_5).feed(wire)
    assert type(packet) is Publish
    assert packet == Publish("a/b", b"x", 1, packet_id=9)
    assert hash(packet) == hash(Publish("a/b", b"x", 1, packet_id=9))
    with pytest.raises(FrozenInstanceError):
        packet.topic = "c"  # type: ignore[misc]
    assert replace(packet, topic="c").topic == "c"
