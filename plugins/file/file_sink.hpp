// file sink: writes one line per record to a file (or stdout): the decoded value as
// JSON, or the raw payload. For inspecting a pipeline's output and for tests.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include <pipehost/sdk.hpp>

#include <pipehost/json.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::file {

// One open file per path, shared by every task writing there, so lines never interleave.
class SharedFile {
 public:
  static std::shared_ptr<SharedFile> open(const std::string& path) {
    // Opened under its path's own lock: an open that blocks (a FIFO without a reader)
    // holds up only the sinks of that path, not every file sink of the process.
    struct Slot {
      std::mutex opening;
      std::weak_ptr<SharedFile> file;
    };
    static std::mutex registry_mutex;
    static std::map<std::string, std::shared_ptr<Slot>> registry;
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard lock(registry_mutex);
      auto& entry = registry[path];
      if (!entry) entry = std::make_shared<Slot>();
      slot = entry;
    }
    std::lock_guard opening(slot->opening);
    if (auto existing = slot->file.lock()) return existing;
    const bool existed = path == "-" || std::filesystem::exists(path);
    std::FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "a");
    if (!f) throw FatalError("cannot open " + path + " for appending: " + std::strerror(errno));
    // A file made now is durable only once its folder's entry is: a machine crash could
    // otherwise lose the whole file while its records' positions stay committed.
    if (!existed) sync_folder_of(path);
    auto made = std::make_shared<SharedFile>(f, path);
    slot->file = made;
    return made;
  }
  SharedFile(std::FILE* f, std::string path) : file_(f), path_(std::move(path)) {}
  static void sync_folder_of(const std::string& path) {
    const std::filesystem::path file(path);
    const std::string folder = file.has_parent_path() ? file.parent_path().string() : ".";
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;  // the file's own fsync still holds its lines
    ::fsync(fd);
    ::close(fd);
  }
  ~SharedFile() {
    if (file_ && file_ != stdout) std::fclose(file_);
  }
  // Durable when it returns with `sync` (fsync): only then is the batch acknowledged
  // and its source positions committed. stdout and pipes cannot be synced.
  // A batch that fails part way (a full disk) is taken back whole from a regular file
  // before the retry writes it again: no line twice, none torn. Written to the descriptor,
  // not through stdio, whose buffer would keep the unwritten rest for the next flush.
  void append(const std::string& lines, bool sync) {
    std::lock_guard lock(mutex_);
    std::fflush(file_);  // stdout: what others printed through stdio goes first
    const int fd = fileno(file_);
    struct stat st {};
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    const off_t before = regular ? st.st_size : 0;  // opened for appending: lines go there
    auto fail = [&](const char* doing) {
      const int error = errno;
      const bool taken_back = regular && ::ftruncate(fd, before) == 0;
      throw RetriableError(std::string("cannot ") + doing + " " + path_ + ": " + std::strerror(error) +
                           (taken_back ? " (the batch's lines taken back; it is written again)" : ""));
    };
    for (std::size_t done = 0; done < lines.size();) {
      const ssize_t n = ::write(fd, lines.data() + done, lines.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write to");
      done += static_cast<std::size_t>(n);
    }
    if (sync && regular && ::fsync(fd) != 0) fail("sync to disk");
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
    o.add("format", &FileConfig::format,
          "json: the decoded value; raw: the payload bytes as they are, then a newline (a binary "
          "payload, protobuf's or Avro's, may hold newlines and does not read back a record per line)")
        .one_of({"json", "raw"});
    o.add("with_key", &FileConfig::with_key,
          "json: {\"value\":..., \"key\":...} (a key that is not UTF-8 text as base64, no key as "
          "null); raw: key, a tab, then the payload");
    o.add("with_headers", &FileConfig::with_headers,
          "json only: add \"headers\": {name: value, ...} (bytes that are not UTF-8 text as base64; a header without a value as null)");
    o.add("fsync", &FileConfig::fsync,
          "sync each batch to disk before acknowledging it (false: a crash of the machine can "
          "lose lines whose source positions were committed)");
  }
  void check(Checker& c) const {
    if (path == "-") return;
    if (path.empty()) return c.problem("path", "is empty: give a file to append to, or \"-\" for stdout");
    const std::filesystem::path file(path);
    const std::filesystem::path folder = file.has_parent_path() ? file.parent_path() : ".";
    std::error_code error;
    if (!std::filesystem::is_directory(folder, error))
      c.problem("path", "folder " + folder.string() +
                            (error && error != std::errc::no_such_file_or_directory
                                 ? " cannot be looked at (" + error.message() + ")"
                                 : std::string(" does not exist")) +
                            ": create it, or give a path in an existing folder");
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
            if (r.key.is_null()) lines += "null";  // no key, not an empty one
            else text_or_base64(r.key.view(), lines);
          }
          if (with_headers_) {
            lines += ",\"headers\":{";
            for (std::size_t i = 0; i < r.headers.size(); ++i) {
              if (i) lines += ',';
              text_or_base64(r.headers[i].key, lines);
              lines += ':';
              if (r.headers[i].null_value) lines += "null";
              else text_or_base64(r.headers[i].value, lines);
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
  // Keys and headers are bytes: as a JSON string when they are UTF-8 text, else base64
  // (raw, they made the line invalid JSON).
  static void text_or_base64(std::string_view bytes, std::string& out) {
    if (utf8::valid(bytes)) json::append_string(bytes, out);
    else json::append_base64(bytes, out);
  }

  std::string path_;
  bool json_;
  bool with_key_;
  bool with_headers_;
  bool sync_;
  std::shared_ptr<SharedFile> out_;
};

}  // namespace pipehost::file
