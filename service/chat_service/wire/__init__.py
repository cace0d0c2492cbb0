"""The wire: how domain values look as protobuf and as bytes, below api/ and fanout/.

- `convert`: domain models to protobuf messages (the API's answers, the events' payloads).
- `frames`: an event's pre-framed stream entry (encoded once per pod, not per recipient).
- `redis_entry`: the layout of an event in a Redis stream entry (read by the broker and the
  webhook notifier).

Imports only the domain and the generated protobuf code.
"""
