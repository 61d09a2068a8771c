"""Message formats: JSON (the dataset's own values) or Confluent wire-format Avro, Protobuf and
JSON Schema through confluent-kafka's Schema Registry serializers.

- `wire`: what a profile's messages are written as, and the one place that splices them;
- `schemas`: the schemas of schemas/, extended with extra dataset columns;
- `avro`, `protobuf`, `json_schema`: one wire layout each (serializer, where id and timestamp are);
- `varint`: the base-128 varints both binary layouts write lengths with;
- `registry`: the Schema Registry client, serializer settings, refusals as one line;
- `encodings`: each profile's wire, made ready at start (`Encodings`); imports `topic` only for
  a non-JSON profile, so a JSON-only run does not load the registry client and serializers;
- `topic`: one topic's serializers and the dataset's rows serialized once with them.
"""
