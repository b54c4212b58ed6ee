#include "runtime/dead_letter.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <tuple>

#include <pipehost/utf8.hpp>
#include <pipehost/subject_header.hpp>

namespace pipehost::host {

void RewoundDeadLetters::written_to_topic(const std::vector<Rejection>& rejections) {
  for (const auto& r : rejections)
    if (r.record.origin.partition >= 0 && r.record.origin.offset >= 0)
      this_batch_.push_back({r.record.origin.topic, r.record.origin.partition, r.record.origin.offset,
                             r.record.destination_topic});
}

void RewoundDeadLetters::rewound() {
  before_rewind_.insert(before_rewind_.end(), this_batch_.begin(), this_batch_.end());
  this_batch_.clear();
}

std::size_t RewoundDeadLetters::remove_written(std::vector<Rejection>& rejections) const {
  if (before_rewind_.empty()) return 0;
  // By origin and destination, how many letters are left to match (a map: a rejection
  // looked up in all letters each was quadratic in a large batch read again).
  using Key = std::tuple<std::string_view, std::int32_t, std::int64_t, std::string_view>;
  std::map<Key, std::size_t> letters;
  for (const Letter& l : before_rewind_) ++letters[Key{l.topic, l.partition, l.offset, l.destination}];
  std::size_t kept = 0;
  for (std::size_t i = 0; i < rejections.size(); ++i) {
    const Record& r = rejections[i].record;
    auto letter = letters.find(Key{r.origin.topic, r.origin.partition, r.origin.offset, r.destination_topic});
    if (letter != letters.end() && letter->second > 0) {
      --letter->second;
      continue;
    }
    if (kept != i) rejections[kept] = std::move(rejections[i]);
    ++kept;
  }
  const std::size_t removed = rejections.size() - kept;
  rejections.erase(rejections.begin() + static_cast<std::ptrdiff_t>(kept), rejections.end());
  return removed;
}

void RewoundDeadLetters::batch_written(const std::vector<Span>& spans) {
  unacknowledged_.insert(unacknowledged_.end(), this_batch_.begin(), this_batch_.end());
  this_batch_.clear();
  if (before_rewind_.empty()) return;
  // Passed by this batch: a synchronous rewind does not read them again, but a later
  // done(rewind) may, until the batch is acknowledged; written twice otherwise.
  auto passed = std::stable_partition(before_rewind_.begin(), before_rewind_.end(), [&](const Letter& l) {
    return !std::any_of(spans.begin(), spans.end(), [&](const Span& s) {
      return s.partition == l.partition && s.topic == l.topic && l.offset < s.next;
    });
  });
  unacknowledged_.insert(unacknowledged_.end(), std::make_move_iterator(passed),
                         std::make_move_iterator(before_rewind_.end()));
  before_rewind_.erase(passed, before_rewind_.end());
}

void RewoundDeadLetters::acknowledged(const std::vector<Position>& positions) {
  if (unacknowledged_.empty()) return;
  std::erase_if(unacknowledged_, [&](const Letter& l) {
    return std::any_of(positions.begin(), positions.end(), [&](const Position& p) {
      return p.partition == l.partition && p.topic == l.topic && l.offset < p.next_offset;
    });
  });
}

void RewoundDeadLetters::rewound_in_flight() {
  before_rewind_.insert(before_rewind_.end(), unacknowledged_.begin(), unacknowledged_.end());
  unacknowledged_.clear();
}

namespace {

// One per write(), shared with the sink's done callback: the callback may come after
// write() gave up, and must find it alive and separate from the next write's.
struct Outcome {
  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;
  Status status;
};

}  // namespace

DeadLetterWriter::DeadLetterWriter(const ComponentSpec& sink, Context& context, std::string topic,
                                   std::string pipeline, DeadLetterTimeouts timeouts)
    : spec_(sink), context_(context), topic_(std::move(topic)), pipeline_(std::move(pipeline)),
      timeouts_(timeouts), most_letter_bytes_(most_letter_bytes(context.kafka_properties())) {}

DeadLetterWriter::~DeadLetterWriter() {
  if (sink_) sink_->stop();  // which flushes (once: 30 s at most with the broker gone)
}

Status DeadLetterWriter::connect() {
  if (sink_) return Status::ok();
  Options options;
  for (const auto& o : spec_.options)
    if (o.default_value) options.values[o.name] = *o.default_value;
  options.values["topic"] = topic_;
  options.values["properties"] = StringMap{{"message.timeout.ms", std::to_string(timeouts_.message_ms)}};
  std::string error;
  auto sink = spec_.make_sink(options, context_, error);
  if (!sink) return Status::fatal("dead-letter producer: " + error);
  if (Status s = sink->start(); !s.is_ok()) return s;
  sink_ = std::move(sink);
  return Status::ok();
}

Status DeadLetterWriter::write(const std::vector<Rejection>& rejections, const std::string& stage,
                               const std::function<bool()>& stopping) {
  if (Status s = connect(); !s.is_ok()) return s;
  Batch batch;
  batch.records.reserve(rejections.size());
  for (const auto& r : rejections) {
    Record& letter = batch.records.emplace_back(r.record);
    letter.destination_topic.clear();
    letter.dropped = false;
    // The headers this writer sets, as the record came with them (from its producer, or a
    // letter's read again by replay), give way: a reader takes the first of a name. And
    // pipehost.subject, which only passes between stages.
    std::erase_if(letter.headers, [](const Header& h) {
      const std::string_view key = h.key;
      return key == "pipehost.pipeline" || key == "pipehost.stage" || key == "pipehost.error" ||
             key.rfind("pipehost.payload", 0) == 0 || key == kSubjectHeader;
    });
    auto add = [&](const char* name, std::string value) { letter.headers.push_back({name, std::move(value)}); };
    add("pipehost.pipeline", pipeline_);
    add("pipehost.stage", stage);
    add("pipehost.error", r.reason);
    // "source": the payload is the one the source read (a stage decoded it, or rejected
    // it as it was), so `pipehost replay` can feed it to the first stage again; "stage":
    // a stage replaced it before the one that rejected the record.
    add("pipehost.payload", r.record.payload.borrowed() && r.record.origin.partition >= 0 ? "source" : "stage");
    // A record `pipehost replay` read from this very topic keeps the origin of its first
    // letter; any other record's origin headers (a replayed record that went on to another
    // topic, read there again) give way to where it was read.
    const bool replayed = r.record.origin.topic == topic_;
    if (!replayed)
      std::erase_if(letter.headers, [](const Header& h) {
        return std::string_view(h.key).rfind("pipehost.origin.", 0) == 0;
      });
    if (r.record.origin.partition >= 0 && !replayed) {
      add("pipehost.origin.topic", std::string(r.record.origin.topic));
      add("pipehost.origin.partition", std::to_string(r.record.origin.partition));
      add("pipehost.origin.offset", std::to_string(r.record.origin.offset));
    }
    fit_in_a_message(letter, most_letter_bytes_);
  }
  auto outcome = std::make_shared<Outcome>();
  Status written = sink_->write(batch, [outcome](Status s) {
    std::lock_guard lock(outcome->mutex);
    outcome->done = true;
    outcome->status = std::move(s);
    outcome->changed.notify_all();
  });
  if (!written.is_ok()) return written;
  // librdkafka reports every message by message.timeout.ms (its timeout scan runs every
  // second): past that and a grace, something is wrong with the producer itself.
  const auto deadline = timeouts_.message_ms > 0
                            ? std::chrono::steady_clock::now() +
                                  std::chrono::milliseconds(timeouts_.message_ms) + std::chrono::seconds(5)
                            : std::chrono::steady_clock::time_point::max();
  std::unique_lock lock(outcome->mutex);
  const auto began = std::chrono::steady_clock::now();
  auto said = began;
  while (!outcome->done) {
    const auto now = std::chrono::steady_clock::now();
    if (stopping())
      return Status::cancelled("stopping while " + std::to_string(rejections.size()) + " letters to " + topic_ +
                               " waited for the broker; their records are read again by the next run");
    if (now > deadline)
      return Status::retriable("dead-letter topic " + topic_ + ": " + std::to_string(rejections.size()) +
                               " records not confirmed by the broker in time");
    // The pipeline waits here, reading nothing: say so, as a stalled stage is said.
    if (now - said >= std::chrono::seconds(30)) {
      said = now;
      context_.warn(std::to_string(rejections.size()) + " letters to dead-letter topic " + topic_ +
                    " have waited " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - began).count()) +
                    " s for the broker (is it down, or does the topic refuse writes: min.insync.replicas, "
                    "ACLs?); the pipeline reads nothing meanwhile");
    }
    outcome->changed.wait_for(lock, std::chrono::milliseconds(50));
  }
  // A letter the producer refused by itself (larger than message.max.bytes) would be lost
  // with the batch committed past it: stop instead, naming it.
  if (outcome->status.code() == Code::cancelled) return outcome->status;  // stopping: not a failure
  if (!batch.rejections.empty())
    return Status::fatal("dead-letter topic " + topic_ + ": the producer refuses a letter: " +
                         batch.rejections.front().reason +
                         " (the dead-letter producer takes its properties from [kafka.properties])");
  if (outcome->status.is_ok()) return Status::ok();
  // The producer retried (within message.timeout.ms, if any) already: the broker refuses
  // these letters (too large, the topic's policy, ACLs), which is for a human.
  std::string why = outcome->status.message();
  if (outcome->status.code() == Code::rewind)  // its record would be read again: a letter's is not
    why = why.substr(0, why.find("; the batch is read again"));
  return Status::fatal("dead-letter topic " + topic_ + ": " + why);
}

// A rejected record near the broker's size limit (a payload the decoder found too large,
// say) plus the letter's headers would be refused by the producer (message.max.bytes,
// 1,000,000 by default): the pipeline would stop on it at every restart. Such a letter
// keeps the start of its payload, and says so; the whole record stays in its topic, at
// the origin the headers name.
std::size_t most_letter_bytes(const StringMap& kafka_properties) {
  auto it = kafka_properties.find("message.max.bytes");
  if (it == kafka_properties.end()) return kMostLetterBytes;
  std::size_t limit = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), limit);
  if (ec != std::errc() || end != it->second.data() + it->second.size()) return kMostLetterBytes;
  return std::min(kMostLetterBytes, limit - std::min(limit, limit / 10 + 1024));  // headroom for framing
}

void fit_in_a_message(Record& letter, std::size_t most) {
  std::size_t size = letter.key.size() + letter.payload.size();
  for (const auto& h : letter.headers) size += h.key.size() + h.value.size() + 16;
  if (size <= most) return;
  const std::size_t whole = letter.payload.size();
  const std::size_t over = size - most;
  const std::size_t kept = whole > over ? whole - over : 0;
  letter.payload = std::string(letter.payload.view().substr(0, kept));
  for (auto& h : letter.headers)
    if (h.key == "pipehost.payload") h.value = "truncated";  // not the source's: not replayed
  letter.headers.push_back({"pipehost.payload.truncated",
                            std::to_string(kept) + " of " + std::to_string(whole) + " bytes kept"});
  if (size - (whole - kept) <= most) return;
  // The key or the record's own headers alone are past it: they go too, and it says so
  // (the whole record stays in its topic, at the origin the headers name).
  std::erase_if(letter.headers, [](const Header& h) { return std::string_view(h.key).rfind("pipehost.", 0) != 0; });
  letter.headers.push_back({"pipehost.key.dropped", std::to_string(letter.key.size()) + " bytes"});
  letter.key = std::string();
}

void clip_reason(std::string& reason) {
  if (reason.size() <= kMostReasonBytes) return;
  const std::size_t cut = utf8::prefix(reason, kMostReasonBytes).size();
  const std::size_t more = reason.size() - cut;
  reason.resize(cut);
  reason += "... (" + std::to_string(more) + " bytes more)";
}

}  // namespace pipehost::host
