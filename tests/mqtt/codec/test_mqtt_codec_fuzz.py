"""Random and mutated bytes: packets or a ProtocolViolation come out, never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_codec_strategies import client_streams, server_packets, versions

from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5, Packet
from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode


def _decoders() -> st.SearchStrategy[Decoder]:
    return st.sampled_from(["server", "server-4", "server-5", "client-4", "client-5"]).map(
        lambda name: {
            "server": lambda: Decoder(),
            "server-4": lambda: Decoder(version=MQTT_3_1_1),
            "server-5": lambda: Decoder(version=MQTT_5),
            "client-4": lambda: Decoder(version=MQTT_3_1_1, from_client=False),
            "client-5": lambda: Decoder(version=MQTT_5, from_client=False),
        }[name]()
    )


def _feed_all(decoder: Decoder, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except ProtocolViolation as error:
        assert isinstance(error.reason, ReasonCode)
        assert error.text


@settings(max_examples=500)
@given(_decoders(), st.lists(st.binary(max_size=64), max_size=6))
def test_random_bytes_give_packets_or_a_violation(decoder: Decoder, chunks: list[bytes]) -> None:
    _feed_all(decoder, chunks)


@st.composite
def _mutated(draw: st.DrawFn) -> list[bytes]:
    version, packets = draw(client_streams())
    wire = bytearray(b"".join(encode(packet, version) for packet in packets))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(wire) - 1))
        wire[index] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(wire)))
    return [bytes(wire[:cut]), bytes(wire[cut:])]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_client_streams_give_packets_or_a_violation(chunks: list[bytes]) -> None:
    _feed_all(Decoder(), chunks)


@settings(max_examples=300)
@given(st.data())
def test_mutated_server_packets_give_packets_or_a_violation(data: st.DataObject) -> None:
    version = data.draw(versions)
    packet: Packet = data.draw(server_packets(version))
    wire = bytearray(encode(packet, version))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    _feed_all(Decoder(version=version, from_client=False), [bytes(wire)])
