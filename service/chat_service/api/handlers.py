"""Registers the servicers with a grpc.aio server, method by method as chat.proto declares
them: request and response classes and the handler's shape come from the descriptors.

The two event streams yield bytes that are already serialized (events are encoded once per
pod, not once per recipient), so their response serializer passes bytes through unchanged;
the wire format is exactly SubscribeResponse / MessageResponse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor

from chat_service.gen import chat_pb2 as pb

SERVICE = "chat.ChatService"
PRE_ENCODED = frozenset({"Subscribe", "StreamMessages"})

# (client streaming, server streaming) -> the grpc handler of that shape
_SHAPES: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _passthrough(data: bytes) -> bytes:
    return data


def generic_handler(
    *servicers: object, proto: FileDescriptor = pb.DESCRIPTOR, service: str = "ChatService"
) -> grpc.GenericRpcHandler:
    """Each RPC of chat.<service> (declared in `proto`) served by the first servicer with a
    method of its name."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    missing: list[str] = []
    for method in proto.services_by_name[service].methods:
        behaviour = next(
            (getattr(s, method.name) for s in servicers if hasattr(s, method.name)), None
        )
        if behaviour is None:
            missing.append(method.name)
            continue
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = _SHAPES[method.client_streaming, method.server_streaming](
            behaviour,
            request_deserializer=request.FromString,
            response_serializer=(
                _passthrough if method.name in PRE_ENCODED else response.SerializeToString
            ),
        )
    if missing:
        file = proto.name.rsplit("/", 1)[-1]
        raise RuntimeError(f"RPCs declared in {file} without a handler: {sorted(missing)}")
    return grpc.method_handlers_generic_handler(f"chat.{service}", handlers)
