// The header one stage hands the next to name the schema-registry subject a record is
// written with: the router sets it (its `subjects`), the Avro and protobuf encoders read
// it. It passes only between stages: the Kafka source drops it from what it reads (else a
// sender could have a record registered and written under another tenant's subject), the
// Kafka sink never writes it to a topic, and a dead letter leaves it out.
#pragma once
#include <string_view>

namespace pipehost {

inline constexpr std::string_view kSubjectHeader = "pipehost.subject";

}  // namespace pipehost
