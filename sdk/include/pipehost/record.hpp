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

  // The most records a source should put in one batch.
  std::size_t capacity = 512;

  std::size_t size() const { return records.size(); }
  bool empty() const { return records.empty(); }

  void drop(std::size_t index) { records[index].dropped = true; }

  void reject(std::size_t index, std::string reason) {
    records[index].dropped = true;
    rejections.push_back({records[index], std::move(reason)});
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
