// log: logs the tuple (key, running sum of a field) for each record, as seed 001 asks,
// and the final totals when the pipeline ends.
#include <cstdio>
#include <limits>

#include <pipehost/decimal.hpp>
#include <pipehost/sdk.hpp>

#include "running_totals.hpp"

namespace pipehost::logsink {

namespace {

class LogSink final : public Sink {
 public:
  LogSink(const Options& options, Context& context)
      : context_(context),
        key_(options.string("key_field")),
        value_(options.string("sum_field")),
        each_record_(options.boolean("each_record")),
        to_stdout_(options.string("output") == "stdout"),
        totals_(RunningTotals::for_pipeline(std::string(context.pipeline()),
                                            static_cast<int>(options.integer("scale")))) {
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
      if (!key || key->is_null()) {
        batch.reject(i, "field '" + key_.name() + "' is missing");
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
          lines += "(" + entries_[i].key + ", " + decimal::format_units(*totals[i], totals_->scale()) +
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
    // The last task of the pipeline to stop prints the summary.
    if (stopped_) return;
    stopped_ = true;
    if (!totals_->leave_last()) return;
    auto totals = totals_->snapshot();
    std::string lines = "final totals of pipeline " + std::string(context_.pipeline()) + " (" +
                        std::to_string(totals.size()) + " keys, " +
                        std::to_string(totals_->records()) + " records):\n";
    for (const auto& [k, units] : totals)
      lines += "  (" + k + ", " + decimal::format_units(units, totals_->scale()) + ")\n";
    emit(lines);
  }

 private:
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
};

PluginSpec describe() {
  PluginSpec p{"log", "0.1.0", "Logs running sums per key (seed 001)", {}};
  p.add_sink<LogSink>(
      "log",
      "Prints (key, running sum) for each record and the final totals at the end; sums are "
      "exact to `scale` decimals and shared by all tasks of the pipeline",
      {
          option("key_field", OptionType::string, std::string("account_number"),
                 "field of the decoded value to group by"),
          option("sum_field", OptionType::string, std::string("amount"),
                 "numeric field to sum"),
          with_range(option("scale", OptionType::integer, std::int64_t{2},
                            "decimals kept exactly"),
                     0, 9),
          option("each_record", OptionType::boolean, true,
                 "print the tuple for every record (false: only the final totals)"),
          with_allowed(option("output", OptionType::string, std::string("stdout"),
                              "where tuples go: stdout, or the log (stderr)"),
                       {"stdout", "log"}),
      },
      "[pipelines.sums.sink]\nplugin = \"log\"\nkey_field = \"account_number\"\n"
      "sum_field = \"amount\"");
  return p;
}

}  // namespace
}  // namespace pipehost::logsink

PIPEHOST_PLUGIN(pipehost::logsink::describe)
