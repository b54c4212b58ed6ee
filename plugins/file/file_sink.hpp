// file sink: writes one line per record to a file (or stdout): the decoded value as
// JSON, or the raw payload. For inspecting a pipeline's output and for tests.
#pragma once
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include <pipehost/sdk.hpp>

#include <pipehost/json.hpp>

namespace pipehost::file {

// One open file per path, shared by every task writing there, so lines never interleave.
class SharedFile {
 public:
  static std::shared_ptr<SharedFile> open(const std::string& path) {
    static std::mutex registry_mutex;
    static std::map<std::string, std::weak_ptr<SharedFile>> registry;
    std::lock_guard lock(registry_mutex);
    if (auto existing = registry[path].lock()) return existing;
    std::FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "a");
    if (!f) throw FatalError("cannot open " + path + " for appending");
    auto made = std::make_shared<SharedFile>(f, path);
    registry[path] = made;
    return made;
  }
  SharedFile(std::FILE* f, std::string path) : file_(f), path_(std::move(path)) {}
  ~SharedFile() {
    if (file_ && file_ != stdout) std::fclose(file_);
  }
  // Durable when it returns with `sync` (fsync): only then is the batch acknowledged
  // and its source positions committed. stdout and pipes cannot be synced.
  void append(const std::string& lines, bool sync) {
    std::lock_guard lock(mutex_);
    if (std::fwrite(lines.data(), 1, lines.size(), file_) != lines.size() || std::fflush(file_) != 0)
      throw RetriableError("cannot write to " + path_ + ": " + std::strerror(errno));
    if (sync && file_ != stdout && ::fsync(fileno(file_)) != 0 && errno != EINVAL)
      throw RetriableError("cannot sync " + path_ + " to disk: " + std::strerror(errno));
  }

 private:
  std::mutex mutex_;
  std::FILE* file_;
  std::string path_;
};

struct FileConfig {
  std::string path;
  std::string format = "json";
  bool with_key = false;
  bool with_headers = false;
  bool fsync = true;

  static void declare(OptionList<FileConfig>& o) {
    o.required("path", &FileConfig::path, "file to append to; \"-\" for stdout");
    o.add("format", &FileConfig::format, "json: the decoded value; raw: the payload bytes")
        .one_of({"json", "raw"});
    o.add("with_key", &FileConfig::with_key,
          "json: {\"value\":..., \"key\":...}; raw: key, a tab, then the payload");
    o.add("with_headers", &FileConfig::with_headers,
          "json only: add \"headers\": {name: value, ...}");
    o.add("fsync", &FileConfig::fsync,
          "sync each batch to disk before acknowledging it (false: a crash of the machine can "
          "lose lines whose source positions were committed)");
  }
};

class FileSink final : public Sink {
 public:
  using Config = FileConfig;
  FileSink(const Config& config, Context&)
      : path_(config.path), json_(config.format == "json"), with_key_(config.with_key),
        with_headers_(config.with_headers), sync_(config.fsync) {}
  void start() override { out_ = SharedFile::open(path_); }

  void write(Batch& batch, BatchDone done) override {
    std::string lines;
    for (const auto& r : batch.records) {
      if (json_) {
        if (with_key_ || with_headers_) {
          lines += "{\"value\":";
          json::append(r.value, lines);
          if (with_key_) {
            lines += ",\"key\":";
            json::append(Value(std::string(r.key.view())), lines);
          }
          if (with_headers_) {
            lines += ",\"headers\":{";
            for (std::size_t i = 0; i < r.headers.size(); ++i) {
              if (i) lines += ',';
              json::append(Value(r.headers[i].key), lines);
              lines += ':';
              json::append(Value(r.headers[i].value), lines);
            }
            lines += '}';
          }
          lines += '}';
        } else {
          json::append(r.value, lines);
        }
      } else {
        if (with_key_) (lines += r.key.view()) += '\t';
        lines += r.payload.view();
      }
      lines += '\n';
    }
    out_->append(lines, sync_);
    done(Status::ok());
  }

  void stop() override { out_.reset(); }

 private:
  std::string path_;
  bool json_;
  bool with_key_;
  bool with_headers_;
  bool sync_;
  std::shared_ptr<SharedFile> out_;
};

}  // namespace pipehost::file
