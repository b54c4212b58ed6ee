// file: writes one line per record to a file (or stdout): the decoded value as JSON,
// or the raw payload. For inspecting a pipeline's output and for tests.
#include <cstdio>

#include <pipehost/sdk.hpp>

#include "json_value.hpp"

namespace pipehost::file {
namespace {

class FileSink final : public Sink {
 public:
  FileSink(const Options& options, Context& context)
      : path_(options.string("path")), json_(options.string("format") == "json"),
        with_key_(options.boolean("with_key")), with_headers_(options.boolean("with_headers")) {
    (void)context;
  }
  ~FileSink() override { close(); }

  void start() override {
    if (path_ == "-") {
      out_ = stdout;
      return;
    }
    out_ = std::fopen(path_.c_str(), "a");
    if (!out_) throw FatalError("cannot open " + path_ + " for appending");
  }

  void write(Batch& batch, BatchDone done) override {
    std::string lines;
    for (const auto& r : batch.records) {
      if (json_) {
        if (with_key_ || with_headers_) {
          lines += "{\"value\":";
          append_json(r.value, lines);
          if (with_key_) {
            lines += ",\"key\":";
            append_json(Value(r.key), lines);
          }
          if (with_headers_) {
            lines += ",\"headers\":{";
            for (std::size_t i = 0; i < r.headers.size(); ++i) {
              if (i) lines += ',';
              append_json(Value(r.headers[i].key), lines);
              lines += ':';
              append_json(Value(r.headers[i].value), lines);
            }
            lines += '}';
          }
          lines += '}';
        } else {
          append_json(r.value, lines);
        }
      } else {
        if (with_key_) lines += r.key + '\t';
        lines += r.payload;
      }
      lines += '\n';
    }
    if (std::fwrite(lines.data(), 1, lines.size(), out_) != lines.size() || std::fflush(out_) != 0)
      throw RetriableError("cannot write to " + path_);
    done(Status::ok());
  }

  void stop() override { close(); }

 private:
  void close() {
    if (out_ && out_ != stdout) std::fclose(out_);
    out_ = nullptr;
  }
  std::string path_;
  bool json_;
  bool with_key_;
  bool with_headers_;
  std::FILE* out_ = nullptr;
};

PluginSpec describe() {
  PluginSpec p{"file", "0.1.0", "Writes records to a file, one line each", {}};
  p.add_sink<FileSink>(
      "file", "Appends one line per record: the decoded value as JSON, or the raw payload",
      {
          required_option("path", OptionType::string, "file to append to; \"-\" for stdout"),
          with_allowed(option("format", OptionType::string, std::string("json"),
                              "json: the decoded value; raw: the payload bytes"),
                       {"json", "raw"}),
          option("with_key", OptionType::boolean, false,
                 "json: {\"value\":..., \"key\":...}; raw: key, a tab, then the payload"),
          option("with_headers", OptionType::boolean, false,
                 "json only: add \"headers\": {name: value, ...}"),
      },
      "[pipelines.tap.sink]\nplugin = \"file\"\npath = \"out.jsonl\"");
  return p;
}

}  // namespace
}  // namespace pipehost::file

PIPEHOST_PLUGIN(pipehost::file::describe)
