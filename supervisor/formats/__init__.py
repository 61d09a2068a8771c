"""Message formats: JSON (the dataset's own values) or Confluent wire-format Avro, Protobuf and
JSON Schema through confluent-kafka's Schema Registry serializers.

- `wire`: what a profile's messages are written as, and the one place that splices them;
- `schemas`: the schemas of schemas/, extended with extra dataset columns;
- `avro`, `protobuf`, `json_schema`: one wire layout each (serializer, where id and timestamp are);
- `registry`: the Schema Registry client, serializer settings, refusals as one line;
- `encodings`: registering at start and serializing the dataset once per format (`Encodings`).
"""
