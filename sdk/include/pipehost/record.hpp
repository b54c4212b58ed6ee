// Records and the batches that carry them through every stage.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pipehost/value.hpp"

namespace pipehost {

// Bytes a record holds: borrowed from the source's own buffer (no copy: valid while the
// batch holds what the source gave it, see Batch::hold) or owned. Read it as a
// string_view; write with = or edit().
class Blob {
 public:
  Blob() = default;
  Blob(std::string s) : owned_(std::move(s)) {}
  Blob(const char* s) : owned_(s) {}
  Blob(const Blob& o) : owned_(o.owned_), borrowed_(o.borrowed_), view_(o.view_) {}
  Blob(Blob&& o) noexcept
      : owned_(std::move(o.owned_)), borrowed_(o.borrowed_), view_(o.view_) {}
  Blob& operator=(const Blob& o) {
    owned_ = o.owned_;
    borrowed_ = o.borrowed_;
    view_ = o.view_;
    return *this;
  }
  Blob& operator=(Blob&& o) noexcept {
    owned_ = std::move(o.owned_);
    borrowed_ = o.borrowed_;
    view_ = o.view_;
    return *this;
  }
  Blob& operator=(std::string s) {
    owned_ = std::move(s);
    borrowed_ = false;
    return *this;
  }
  Blob& operator=(std::string_view s) {
    owned_.assign(s);
    borrowed_ = false;
    return *this;
  }
  Blob& operator=(const char* s) { return *this = std::string_view(s); }

  // Points at memory the batch keeps alive (Batch::hold): no copy.
  void borrow(std::string_view bytes) {
    view_ = bytes;
    borrowed_ = true;
  }
  // Null, not empty: a Kafka key or value that is absent (a tombstone's value). It reads
  // as empty; the kafka sink writes it back as null. Any write makes it an empty value.
  void borrow_null() {
    view_ = std::string_view();
    borrowed_ = true;
  }
  bool is_null() const { return borrowed_ && view_.data() == nullptr; }
  std::string_view view() const {
    if (!borrowed_) return owned_;
    return view_.data() ? view_ : std::string_view("", 0);  // never a null pointer to read
  }
  operator std::string_view() const { return view(); }
  const char* data() const { return view().data(); }
  std::size_t size() const { return view().size(); }
  bool empty() const { return size() == 0; }
  bool borrowed() const { return borrowed_; }
  // The bytes as a string of the record's own, to change in place (a borrowed view is
  // copied first); its capacity is kept when the record is reused.
  std::string& edit() {
    if (borrowed_) {
      owned_.assign(view_);
      borrowed_ = false;
    }
    return owned_;
  }
  friend bool operator==(const Blob& a, std::string_view b) { return a.view() == b; }

 private:
  std::string owned_;
  bool borrowed_ = false;
  std::string_view view_;
};

struct Header {
  std::string key;
  std::string value;
  // A Kafka header without a value (value empty), not an empty one; a stage that gives
  // it a value clears it (the kafka sink writes a non-empty value as it is anyway).
  bool null_value = false;
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
// from = kAfterLostRecords: records before the first one were deleted unread (retention;
// the source has said so loudly): a stored position before it is not lost writes.
// Spans are the batch's, not its records': dropping, rejecting or fanning out records
// leaves them as they are, so a position never moves back or skips a record.
struct Span {
  static constexpr std::int64_t kAfterLostRecords = -2;
  std::string_view topic;  // interned by the source for the life of the pipeline
  std::int32_t partition = -1;
  std::int64_t from = -1;
  std::int64_t next = 0;
};

// A committable source position: the next offset to read in a partition.
struct Position {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t next_offset = 0;
};

// Where each (topic, partition) of a list is, for lists a batch or a drain builds one
// entry per partition: a search of the list per record or per entry made a batch over
// hundreds of partitions quadratic. `slot` gives the index to use, and whether it is new
// (the caller then appends the entry at that index).
class PartitionSlots {
 public:
  std::pair<std::size_t, bool> slot(std::string_view topic, std::int32_t partition) {
    auto [it, added] = slots_.try_emplace({topic, partition}, slots_.size());
    return {it->second, added};
  }
  void clear() { slots_.clear(); }
  std::size_t size() const { return slots_.size(); }

 private:
  struct Hash {
    std::size_t operator()(const std::pair<std::string_view, std::int32_t>& k) const noexcept {
      return std::hash<std::string_view>{}(k.first) * 31 + static_cast<std::size_t>(k.second);
    }
  };
  std::unordered_map<std::pair<std::string_view, std::int32_t>, std::size_t, Hash> slots_;
};

// Storage an earlier record's decoded struct had (see Batch::add): never data. A copy of
// a record starts without it, so copies cost nothing extra.
class RecycledStruct {
 public:
  RecycledStruct() = default;
  RecycledStruct(const RecycledStruct&) noexcept {}
  RecycledStruct& operator=(const RecycledStruct&) noexcept { return *this; }
  RecycledStruct(RecycledStruct&&) noexcept = default;
  RecycledStruct& operator=(RecycledStruct&&) noexcept = default;
  bool empty() const { return s.fields.capacity() == 0; }
  Struct s;
};

struct Record {
  Blob key;      // raw bytes
  Blob payload;  // raw bytes of the value (the encoded form)
  std::vector<Header> headers;
  std::int64_t timestamp_ms = 0;
  Origin origin;
  std::string destination_topic;  // empty: the sink's configured topic
  Value value;                    // decoded form, filled by decoders and sources
  bool dropped = false;           // set through Batch::drop / Batch::reject

  // The first header of that name's value (empty for a header without a value: see
  // Header::null_value), or null when there is none.
  const std::string* header(std::string_view name) const {
    for (const auto& h : headers)
      if (h.key == name) return &h.value;
    return nullptr;
  }

  // `value`, for a decoder that overwrites it whole: when it is null, it takes the storage
  // of a struct an earlier record in this slot decoded into (a record from Batch::add), so
  // decoding the same shape again allocates nothing. What it holds then is not this
  // record's data: the decoder must set every part of it (schema, every field) or reset
  // the value before returning.
  Value& value_to_overwrite() {
    if (value.is_null() && !recycled_.empty()) value = std::move(recycled_.s);
    return value;
  }

  // For Batch: the storage of this record's decoded struct (or of the one it was given),
  // taken away; and storage handed to a new record, for value_to_overwrite.
  Struct take_storage() {
    if (Struct* s = value.as<Struct>()) return std::move(*s);
    return std::move(recycled_.s);
  }
  void give_storage(Struct&& storage) { recycled_.s = std::move(storage); }

 private:
  RecycledStruct recycled_;
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
  Batch() = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  Batch(Batch&& o) noexcept
      : records(std::move(o.records)), rejections(std::move(o.rejections)),
        spans(std::move(o.spans)), capacity(o.capacity), held_(std::move(o.held_)),
        spare_(std::move(o.spare_)) {
    o.held_.clear();
  }
  Batch& operator=(Batch&& o) noexcept {
    if (this == &o) return *this;
    records.clear();
    rejections.clear();
    spare_.clear();
    release();
    records = std::move(o.records);
    rejections = std::move(o.rejections);
    spans = std::move(o.spans);
    capacity = o.capacity;
    held_ = std::move(o.held_);
    spare_ = std::move(o.spare_);
    o.held_.clear();
    return *this;
  }
  ~Batch() {
    records.clear();  // before what their borrowed bytes point into
    rejections.clear();
    spare_.clear();
    release();
  }

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

  // A record to fill, appended to records. When the host recycles batches, it comes with
  // the storage an earlier record's decoded value had, which a decoder reuses through
  // Record::value_to_overwrite. Sources should prefer it to records.emplace_back().
  Record& add() {
    Record& r = records.emplace_back();
    if (!spare_.empty()) {
      r.give_storage(std::move(spare_.back()));
      spare_.pop_back();
    }
    return r;
  }

  // Empties the batch as destroying it would (records first, then what they borrowed is
  // released), keeping the storage of up to `capacity` decoded structs for add(). The
  // host calls it between polls; nothing of the batch may be used after it.
  void recycle() {
    // Last record first, so add() hands record i the storage record i had (spare_ is a
    // stack): each batch walks its storage in one order. In the order taken, polls of
    // varying sizes shuffled it, and a cold shuffled batch decodes several times slower
    // than a cold sequential one (bench/NOTES.md).
    for (auto r = records.rbegin(); r != records.rend(); ++r) keep_spare(*r);
    records.clear();
    rejections.clear();
    spans.clear();
    release();
  }

  void drop(std::size_t index) { records[index].dropped = true; }

  void reject(std::size_t index, std::string reason) {
    records[index].dropped = true;
    rejections.push_back({records[index], std::move(reason)});
  }

  // Spans made from the records' origins, for a source that does not fill them: each
  // partition from -1 (no claim about what precedes it) to its last offset + 1.
  std::vector<Span> spans_from_records() const {
    std::vector<Span> out;
    PartitionSlots slots;
    for (const auto& r : records) {
      if (r.origin.partition < 0 || r.origin.offset < 0) continue;
      auto [at, added] = slots.slot(r.origin.topic, r.origin.partition);
      if (added) out.push_back({r.origin.topic, r.origin.partition, -1, r.origin.offset + 1});
      else if (r.origin.offset + 1 > out[at].next) out[at].next = r.origin.offset + 1;
    }
    return out;
  }

  // Keeps `resource` alive until the batch is released: what borrowed Blobs point into
  // (e.g. the source's message buffers). `release` is called once with it.
  void hold(void* resource, void (*release)(void*)) { held_.push_back({resource, release}); }
  // Gives back what the batch holds; records with borrowed bytes must be gone by then.
  void release() {
    for (auto& h : held_) h.release(h.resource);
    held_.clear();
  }

  // Removes dropped records, keeping order. The host calls it after every stage.
  void compact() {
    std::size_t out = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (records[i].dropped) {
        keep_spare(records[i]);
        continue;
      }
      if (out != i) records[out] = std::move(records[i]);
      ++out;
    }
    records.resize(out);
  }

 private:
  struct Held {
    void* resource;
    void (*release)(void*);
  };
  std::vector<Held> held_;

  // Spares hold at most what one batch's decoded structs held (which the in-flight byte
  // limit counted moments before), and nothing of a big record: a struct decoded from a
  // few KiB is small, while one from a big payload would keep its size for good.
  static constexpr std::size_t kMostRecycledBytes = 4 * 1024;
  void keep_spare(Record& r) noexcept {
    if (spare_.size() >= capacity || r.key.size() + r.payload.size() > kMostRecycledBytes) return;
    Struct storage = r.take_storage();
    if (!storage.fields.capacity()) return;
    try {
      spare_.push_back(std::move(storage));
    } catch (...) {  // out of memory: a spare is only an optimisation
    }
  }
  std::vector<Struct> spare_;  // storage for add(), never read
};

}  // namespace pipehost
