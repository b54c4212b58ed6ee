// For a sink that stores source positions with its data (exactly once): whether the store
// has applied a batch whose records cannot be told apart by source position.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pipehost/record.hpp"
#include "pipehost/status.hpp"

namespace pipehost {

// Whether the store has applied `batch` taken as a whole: records that fold several source
// records (count_by's totals, an aggregate's rows) carry no position of their own, so they
// are written when no span is applied and skipped when every span is. True when every span
// is applied (the position stored for its partition at or past its end), false when none
// is (no position stored, the span starting at it, or after records the log lost). Anything
// between cannot be written exactly once: PositionMismatch is thrown, and the host reads
// each partition again from its stored position, where the next batch starts.
// `stored(span)` is the position the store holds for the span's partition (nullopt: none);
// `who` names the sink and the store in messages ("sqlite: table positions").
template <class StoredOf>
bool applied_whole(const Batch& batch, const StoredOf& stored, std::string_view who) {
  std::size_t applied = 0;
  for (const Span& span : batch.spans) {
    const std::optional<std::int64_t> at = stored(span);
    if (at && *at >= span.next) {
      ++applied;
      continue;
    }
    if (at && span.from != Span::kAfterLostRecords && *at != span.from)
      throw PositionMismatch(std::string(who) + " holds position " + std::to_string(*at) + " for " +
                             std::string(span.topic) + ":" + std::to_string(span.partition) +
                             " but this batch covers " + std::to_string(span.from) + ".." +
                             std::to_string(span.next) + ": reading again from the stored position");
  }
  if (applied > 0 && applied < batch.spans.size())
    throw PositionMismatch(std::string(who) +
                           " shows part of this batch's partitions applied already: reading again "
                           "from the stored positions");
  return applied > 0;
}

}  // namespace pipehost
