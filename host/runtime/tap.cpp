#include "runtime/tap.hpp"

#include <algorithm>

#include "pipehost/json.hpp"
#include "pipehost/utf8.hpp"

namespace pipehost::host {
namespace {

void append_bytes(const char* name, std::string_view bytes, std::string& out) {
  out += ",\"";
  out += name;
  if (utf8::valid(bytes)) {
    out += "\":";
    json::append_string(bytes, out);
  } else {
    out += "_base64\":";
    json::append_base64(bytes, out);
  }
}

}  // namespace

std::string TapPoint::record_json(const std::string& stage, int task, const Record& r) {
  std::string out = "{\"stage\":";
  json::append_string(stage, out);
  out += ",\"task\":" + std::to_string(task);
  if (r.origin.partition >= 0) {
    out += ",\"topic\":";
    json::append_string(r.origin.topic, out);
    out += ",\"partition\":" + std::to_string(r.origin.partition);
    out += ",\"offset\":" + std::to_string(r.origin.offset);
  }
  out += ",\"timestamp_ms\":" + std::to_string(r.timestamp_ms);
  if (r.key.size() > 0) append_bytes("key", r.key.view(), out);
  if (!r.headers.empty()) {
    out += ",\"headers\":{";
    // Header bytes that are not UTF-8 text as base64, as keys and payloads (raw, they
    // made the line invalid JSON).
    auto text = [&](std::string_view bytes) {
      if (utf8::valid(bytes)) json::append_string(bytes, out);
      else json::append_base64(bytes, out);
    };
    for (std::size_t i = 0; i < r.headers.size(); ++i) {
      if (i) out += ',';
      text(r.headers[i].key);
      out += ':';
      if (r.headers[i].null_value) out += "null";
      else text(r.headers[i].value);
    }
    out += '}';
  }
  if (!r.destination_topic.empty()) {
    out += ",\"destination_topic\":";
    json::append_string(r.destination_topic, out);
  }
  if (!r.value.is_null()) {
    out += ",\"value\":";
    json::append(r.value, out);
  }
  if (r.payload.size() > 0 || r.value.is_null()) append_bytes("payload", r.payload.view(), out);
  out += '}';
  return out;
}

std::shared_ptr<TapPoint::Tap> TapPoint::open(std::string stage, std::size_t limit) {
  auto tap = std::make_shared<Tap>();
  tap->stage = std::move(stage);
  tap->remaining = limit;
  std::lock_guard lock(mutex_);
  taps_.push_back(tap);
  open_taps_ = static_cast<int>(taps_.size());
  return tap;
}

void TapPoint::close(const std::shared_ptr<Tap>& tap) {
  std::lock_guard lock(mutex_);
  std::erase(taps_, tap);
  open_taps_ = static_cast<int>(taps_.size());
}

void TapPoint::offer(const std::string& stage, int task, const Batch& batch) {
  std::lock_guard lock(mutex_);
  bool any = false;
  for (auto& tap : taps_) {
    if (tap->stage != stage) continue;
    for (const Record& r : batch.records) {
      if (tap->remaining == 0 || tap->unread_bytes > kMostUnreadBytes) break;
      if (r.dropped) continue;
      tap->lines.push_back(record_json(stage, task, r));
      tap->unread_bytes += tap->lines.back().size();
      --tap->remaining;
      any = true;
    }
  }
  if (any) changed_.notify_all();
}

bool TapPoint::take(Tap& tap, std::vector<std::string>& out, std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, wait, [&] { return !tap.lines.empty() || tap.remaining == 0; });
  while (!tap.lines.empty()) {
    tap.unread_bytes -= tap.lines.front().size();
    out.push_back(std::move(tap.lines.front()));
    tap.lines.pop_front();
  }
  return tap.remaining > 0 || !out.empty();
}

}  // namespace pipehost::host
