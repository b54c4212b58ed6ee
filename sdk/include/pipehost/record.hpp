// Records and the batches that carry them through every stage.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipehost/value.hpp"

namespace pipehost {

struct Header {
  std::string key;
  std::string value;
};

// Where a record was read from. `topic` points at storage the source keeps for the
// life of the pipeline (sources intern their topic names).
struct Origin {
  std::string_view topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

// The stretch of one source partition a batch covers: the source read every offset in
// [from, next), and the records it found there are in the batch (offsets without a record
// — transaction markers, compacted keys — are simply absent). A sink that stores
// positions with its data stores `next`, and may check that the batch starts where its
// stored position is (`from`). from = -1: the source cannot vouch for what precedes the
// batch's first record (its first read of a partition from an unknown start).
// Spans are the batch's, not its records': dropping, rejecting or fanning out records
// leaves them as they are, so a position never moves back or skips a record.
struct Span {
  std::string_view topic;  // interned by the source for the life of the pipeline
  std::int32_t partition = -1;
  std::int64_t from = -1;
  std::int64_t next = 0;
};

struct Record {
  std::string key;      // raw bytes
  std::string payload;  // raw bytes of the value (the encoded form)
  std::vector<Header> headers;
  std::int64_t timestamp_ms = 0;
  Origin origin;
  std::string destination_topic;  // empty: the sink's configured topic
  Value value;                    // decoded form, filled by decoders and sources
  bool dropped = false;           // set through Batch::drop / Batch::reject

  const std::string* header(std::string_view name) const {
    for (const auto& h : headers)
      if (h.key == name) return &h.value;
    return nullptr;
  }
};

// A record a stage set aside as bad, with why. The host dead-letters it, skips it or
// fails the pipeline according to the pipeline's `on_error` policy.
struct Rejection {
  Record record;
  std::string reason;
};

// Acknowledgement of whole batches is the host's business: dropping, rejecting or fanning
// out records never loses or duplicates an acknowledgement.
class Batch {
 public:
  std::vector<Record> records;
  std::vector<Rejection> rejections;
  // Filled by the source (or by the host from the records' origins when a source with
  // positions leaves it empty); one entry per partition.
  std::vector<Span> spans;

  const Span* span(std::string_view topic, std::int32_t partition) const {
    for (const auto& s : spans)
      if (s.partition == partition && s.topic == topic) return &s;
    return nullptr;
  }

  // The most records a source should put in one batch.
  std::size_t capacity = 512;

  std::size_t size() const { return records.size(); }
  bool empty() const { return records.empty(); }

  void drop(std::size_t index) { records[index].dropped = true; }

  void reject(std::size_t index, std::string reason) {
    records[index].dropped = true;
    rejections.push_back({records[index], std::move(reason)});
  }

  // Spans made from the records' origins, for a source that does not fill them: each
  // partition from -1 (no claim about what precedes it) to its last offset + 1.
  std::vector<Span> spans_from_records() const {
    std::vector<Span> out;
    for (const auto& r : records) {
      if (r.origin.partition < 0 || r.origin.offset < 0) continue;
      Span* same = nullptr;
      for (auto& s : out)
        if (s.partition == r.origin.partition && s.topic == r.origin.topic) same = &s;
      if (!same) out.push_back({r.origin.topic, r.origin.partition, -1, r.origin.offset + 1});
      else if (r.origin.offset + 1 > same->next) same->next = r.origin.offset + 1;
    }
    return out;
  }

  // Removes dropped records, keeping order. The host calls it after every stage.
  void compact() {
    std::size_t out = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (records[i].dropped) continue;
      if (out != i) records[out] = std::move(records[i]);
      ++out;
    }
    records.resize(out);
  }
};

}  // namespace pipehost
