// log sink: logs the tuple (key, running sum of a field) for each record, as seed 001
// asks, and the final totals when the pipeline ends. Sums are exact decimals, shared by
// every task of the pipeline in this process.
#pragma once
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <utility>

#include <pipehost/decimal.hpp>
#include <pipehost/sdk.hpp>

#include "running_totals.hpp"

namespace pipehost::logsink {

struct LogConfig {
  std::string key_field = "account_number";
  std::string sum_field = "amount";
  int scale = 2;
  bool each_record = true;
  std::string output = "stdout";

  static void declare(OptionList<LogConfig>& o) {
    o.add("key_field", &LogConfig::key_field,
          "field of the decoded value to group by (a total per key is kept in memory for the "
          "life of the process: for a key of millions of values, sum into redis_sum instead)");
    o.add("sum_field", &LogConfig::sum_field,
          "numeric field to sum (integers, doubles, or decimal strings)");
    o.add("scale", &LogConfig::scale, "decimals kept exactly").range(0, 9);
    o.add("each_record", &LogConfig::each_record,
          "print the tuple for every record (false: only the final totals)");
    o.add("output", &LogConfig::output, "where tuples go: stdout, or the log (stderr)")
        .one_of({"stdout", "log"});
  }
};

class LogSink final : public Sink {
 public:
  using Config = LogConfig;
  LogSink(const Config& config, Context& context)
      : context_(context),
        key_(config.key_field),
        value_(config.sum_field),
        each_record_(config.each_record),
        to_stdout_(config.output == "stdout"),
        totals_(RunningTotals::for_pipeline(std::string(context.pipeline()),
                                            config.key_field + '\n' + config.sum_field, config.scale)),
        amounts_rounded_(context.counter("amounts_rounded")) {
    totals_->join();
  }

  // Reads every record's key and amount; rejects those without them before anything
  // is counted.
  void prepare(Batch& batch) override {
    entries_.clear();
    entries_.reserve(batch.records.size());
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      const Record& r = batch.records[i];
      const Value* key = key_.read(r.value);
      // As redis_sum says it: a total under no key, or a list's text, is nobody's.
      const char* bad_key = !key                                    ? "is missing"
                            : key->is_null()                        ? "is null"
                            : key->is<List>() || key->is<Struct>()  ? "is not a scalar"
                            : key->to_text().empty()                ? "is empty"
                                                                    : nullptr;
      if (bad_key) {
        batch.reject(i, "field '" + key_.name() + "' " + bad_key);
        continue;
      }
      const Value* amount = value_.read(r.value);
      if (!amount) {
        batch.reject(i, "field '" + value_.name() + "' is missing");
        continue;
      }
      std::string problem;
      auto units = decimal::to_units(*amount, totals_->scale(),
                                     std::numeric_limits<std::int64_t>::max(), problem);
      if (!units) {
        batch.reject(i, "field '" + value_.name() + "' " + problem);
        continue;
      }
      if (const double* d = amount->as<double>(); d && decimal::rounds(*d, totals_->scale())) {
        amounts_rounded_.add();
        if (!std::exchange(rounding_warned_, true))
          context_.warn("log: " + decimal::rounding_warning(value_.name(), *d, totals_->scale()));
      }
      entries_.push_back({key->to_text(), *units});
    }
  }

  void write(Batch& batch, BatchDone done) override {
    if (entries_.size() != batch.records.size())
      throw FatalError("log: write without prepare (the host calls prepare first)");
    auto totals = totals_->apply(batch, entries_);
    if (each_record_) {
      std::string lines;
      for (std::size_t i = 0; i < totals.size(); ++i)
        if (totals[i])
          lines += "(" + printable(entries_[i].key) + ", " + decimal::format_units(*totals[i], totals_->scale()) +
                   ")\n";
      emit(lines);
    }
    done(Status::ok());
  }

  // Where this process already counted up to: a partition moving between tasks resumes
  // there instead of at the group's last commit.
  std::optional<std::int64_t> stored_position(std::string_view topic,
                                              std::int32_t partition) override {
    return totals_->next_offset(topic, partition);
  }

  void stop() override {
    // The last task of the pipeline to stop prints the summary (of everything this
    // process counted: a restarted pipeline's too).
    if (stopped_) return;
    stopped_ = true;
    if (!totals_->leave_last()) return;
    auto totals = totals_->snapshot();
    std::string lines = "final totals of pipeline " + std::string(context_.pipeline()) + " (" +
                        std::to_string(totals.size()) + " keys, " +
                        std::to_string(totals_->records()) + " records):\n";
    for (const auto& [k, units] : totals)
      lines += "  (" + printable(k) + ", " + decimal::format_units(units, totals_->scale()) + ")\n";
    emit(lines);
  }

 private:
  // A key as one line of text: control characters (a key holding "\r\n(ACC1, 999.00)"
  // would print a line of its own) and the backslash written as escapes.
  static std::string printable(const std::string& key) {
    if (std::none_of(key.begin(), key.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\';
        }))
      return key;
    std::string out;
    for (char c : key) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if (c == '\t') out += "\\t";
      else if (u < 0x20 || u == 0x7f) {
        static const char* hex = "0123456789abcdef";
        out += "\\x";
        out += hex[u >> 4];
        out += hex[u & 15];
      } else {
        out += c;
      }
    }
    return out;
  }

  void emit(const std::string& lines) {
    if (lines.empty()) return;
    if (to_stdout_) {
      std::fwrite(lines.data(), 1, lines.size(), stdout);
      std::fflush(stdout);
    } else {
      std::size_t start = 0;
      while (start < lines.size()) {
        std::size_t end = lines.find('\n', start);
        context_.info(std::string_view(lines).substr(start, end - start));
        start = end + 1;
      }
    }
  }

  Context& context_;
  FieldReader key_;
  FieldReader value_;
  bool each_record_;
  bool to_stdout_;
  std::shared_ptr<RunningTotals> totals_;
  std::vector<Entry> entries_;  // from prepare: the kept records' keys and amounts
  bool stopped_ = false;
  Counter& amounts_rounded_;  // double amounts with more decimals than scale
  bool rounding_warned_ = false;
};

}  // namespace pipehost::logsink
