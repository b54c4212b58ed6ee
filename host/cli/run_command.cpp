#include "cli/run_command.hpp"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <cstdio>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "admin/admin_server.hpp"
#include "cli/commands.hpp"
#include "config/stage_checks.hpp"
#include "http/route_server.hpp"
#include "log.hpp"
#include "runtime/runtime.hpp"
#include "services/memory_registry.hpp"

namespace pipehost::host {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> progress_line_shown{false};
void clear_progress_line() {
  if (progress_line_shown.exchange(false)) std::fputs("\r\033[2K", stderr);
}

std::string rate_text(double per_second) {
  char buf[32];
  if (per_second >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM/s", per_second / 1e6);
  else if (per_second >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk/s", per_second / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f/s", per_second);
  return buf;
}

class Progress {
 public:
  Progress(Runtime& runtime, const RunOptions& options)
      : runtime_(runtime), options_(options), terminal_(isatty(STDERR_FILENO)) {}

  void tick(bool final_tick) {
    PipelineList pipelines_ = runtime_.pipelines();
    auto now = Clock::now();
    double seconds = std::chrono::duration<double>(now - last_time_).count();
    bool log_due = now - last_log_ >= std::chrono::seconds(options_.progress_log_interval_s);
    if (!final_tick && seconds < 0.5) return;
    std::string line;
    for (std::size_t i = 0; i < pipelines_.size(); ++i) {
      PipelineState& s = pipelines_[i]->state();
      std::uint64_t acked = s.records_acked;
      std::uint64_t total = s.expected_total();
      std::uint64_t& last = last_[pipelines_[i]];  // 0 for a pipeline a reload started
      double rate = seconds > 0 && acked >= last ? static_cast<double>(acked - last) / seconds : 0;
      last = acked;
      std::string part = s.name + " " + std::to_string(acked);
      if (total) part += "/" + std::to_string(total) + " (" + std::to_string(acked * 100 / total) + "%)";
      part += " " + rate_text(rate);
      if (pipelines_[i]->done()) part += s.failed() ? " failed" : " done";
      if (!line.empty()) line += "  |  ";
      line += part;
    }
    last_time_ = now;
    std::erase_if(last_, [](const auto& entry) { return entry.first.expired(); });  // retired by a reload
    if (terminal_ && options_.progress_on_terminal) {
      clear_progress_line();
      std::fprintf(stderr, "%s", line.c_str());
      progress_line_shown = true;
      if (final_tick) {
        std::fputs("\n", stderr);
        progress_line_shown = false;
      }
    } else if (log_due || final_tick) {
      log_info("progress: " + line);
      last_log_ = now;
    }
  }

 private:
  Runtime& runtime_;
  RunOptions options_;
  bool terminal_;
  // By owner, not address: a pipeline a reload starts can be made where a retired one was.
  std::map<std::weak_ptr<Pipeline>, std::uint64_t, std::owner_less<>> last_;
  Clock::time_point last_time_ = Clock::now();
  Clock::time_point last_log_ = Clock::now();
};

// Per pipeline: records, rate and end-to-end latency, logged and (--stats) written as JSON.
void report(const PipelineList& pipelines, Clock::duration elapsed,
            const std::string& stats_file) {
  double seconds = std::chrono::duration<double>(elapsed).count();
  nlohmann::json stats = {{"seconds", seconds}, {"pipelines", nlohmann::json::object()}};
  for (auto& p : pipelines) {
    PipelineState& s = p->state();
    const LatencyHistogram& l = s.latency;
    nlohmann::json entry = {{"records_read", s.records_read.load()},
                            {"records_acked", s.records_acked.load()},
                            {"records_rejected", s.records_rejected.load()},
                            {"records_dead_lettered", s.records_dead_lettered.load()},
                            {"failed", s.failed()}};
    std::string rejected;
    if (const auto n = s.records_rejected.load(); n > 0) {
      // Rejected records skipped or dead-lettered are acknowledged too; with on_error =
      // "fail" the pipeline stopped at them, unacknowledged.
      rejected = ", " + std::to_string(n) + (n <= s.records_acked.load() ? " of them" : "") + " rejected";
      if (const auto letters = s.records_dead_lettered.load(); letters > 0)
        rejected += " (" + std::to_string(letters) + " dead-lettered)";
    }
    if (l.count() > 0) {
      entry["latency_ms"] = {{"count", l.count()}, {"p50", l.percentile(0.5)},
                             {"p99", l.percentile(0.99)}, {"p999", l.percentile(0.999)},
                             {"max", l.percentile(1.0)}};
      // The histogram's last bucket holds everything from 10 s up.
      auto ms = [](std::int64_t v) {
        return v >= LatencyHistogram::kBuckets - 1 ? "10000 or more" : std::to_string(v);
      };
      log_info(s.name + ": " + std::to_string(s.records_acked.load()) + " records acknowledged" + rejected +
               "; latency ms p50 " + ms(l.percentile(0.5)) + ", p99 " + ms(l.percentile(0.99)) + ", p99.9 " +
               ms(l.percentile(0.999)));
    } else if (!rejected.empty()) {
      log_info(s.name + ": " + std::to_string(s.records_acked.load()) + " records acknowledged" + rejected);
    }
    stats["pipelines"][s.name] = entry;
    // A run that wrote nothing at all is most likely a config mistake, not bad data.
    if (const auto n = s.records_rejected.load(); n >= 100 && n == s.records_read.load())
      log_warn(s.name + ": every one of the " + std::to_string(n) + " records read was rejected (the reasons are "
               "logged above): often a stage reading a field an earlier one does not give, e.g. a decoder's "
               "`fields` without the sink's key or value field");
  }
  if (stats_file.empty()) return;
  std::FILE* f = std::fopen(stats_file.c_str(), "w");
  if (!f) return log_warn("cannot write --stats file " + stats_file);
  std::string text = stats.dump(2) + "\n";
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

}  // namespace

namespace {
// Sent by a pipeline's supervisor to the main thread (never to the process) when the
// pipeline ends: the main thread's wait returns at once instead of after up to 100 ms
// (a run's end used to wait for it: ~50 ms of a 2-second benchmark run).
constexpr int kPipelineEndedSignal = SIGUSR2;
}  // namespace

void block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, kPipelineEndedSignal);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

std::vector<std::int64_t> file_stamps(const std::vector<std::string>& files) {
  std::vector<std::int64_t> out;
  for (const auto& f : files) {
    std::error_code ec;
    auto t = std::filesystem::last_write_time(f, ec);
    out.push_back(ec ? -1 : static_cast<std::int64_t>(t.time_since_epoch().count()));
  }
  return out;
}

namespace {

// SIGHUP: the files read and checked again like at start; only then are the pipelines
// whose definition changed restarted. Anything wrong keeps the running ones as they are.
// --watch: the files' last modification times; a change (after it has settled for a
// second, so an editor's partial write is not read) is a reload.
class FileWatch {
 public:
  FileWatch(std::vector<std::string> files, std::vector<std::int64_t> read_at)
      : files_(std::move(files)), seen_(read_at.size() == files_.size() ? std::move(read_at) : file_stamps(files_)) {}
  bool changed() {
    if (files_.empty()) return false;
    auto now = Clock::now();
    if (now - last_check_ < std::chrono::seconds(1)) return false;
    last_check_ = now;
    auto current = file_stamps(files_);
    if (current == seen_) {
      pending_ = false;
      return false;
    }
    if (!pending_ || current != candidate_) {  // wait one more check for it to settle
      pending_ = true;
      candidate_ = current;
      return false;
    }
    pending_ = false;
    seen_ = current;
    return true;
  }

 private:
  std::vector<std::string> files_;
  std::vector<std::int64_t> seen_, candidate_;
  bool pending_ = false;
  Clock::time_point last_check_ = Clock::now();
};

// SIGINT/SIGTERM: the first drains every pipeline, a second exits at once.
void on_stop_signal(int sig, int& signals_seen, Runtime& runtime) {
  if (++signals_seen > 1) {
    clear_progress_line();
    log_error("second signal: exiting without draining");
    std::_Exit(130);
  }
  log_info(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
           ": draining in-flight records, flushing sinks and committing (again to force exit)");
  runtime.stop();
}

// A config a reload started pipelines from: kept while any of them lives (they refer to
// its pipeline definitions and its plugins' component specs). A pipeline object outlives
// its retirement while something holds it (an admin request's list), hence weak_ptrs.
struct Generation {
  std::unique_ptr<LoadedConfig> loaded;
  std::vector<std::weak_ptr<Pipeline>> pipelines;
};

void reload(Runtime& runtime, const RunOptions& options, std::vector<Generation>& generations,
            int& signals_seen) {
  if (!options.reload) return;
  log_info("reading the config files again");
  std::unique_ptr<LoadedConfig> next = options.reload();
  if (!next) {
    log_error("reload refused: the files have the problems above; the running pipelines go on unchanged");
    return;
  }
  std::string fixed = runtime.fixed_settings_changed(next->config);
  if (!fixed.empty()) {
    log_error("reload refused: " + fixed + " changed, which only a restart of pipehost applies; the "
              "running pipelines go on unchanged");
    return;
  }
  Diagnostics problems;
  std::vector<std::string> unreachable;
  check_stages(next->config, runtime.check_services(), true, problems, unreachable);
  if (!problems.empty() || !unreachable.empty()) {
    log_problems(problems);
    for (const auto& u : unreachable) log_error(u);
    log_error("reload refused: a stage's check failed (above); the running pipelines go on unchanged");
    return;
  }
  std::string topics_error;
  if (!runtime.create_new_topics(next->config, topics_error)) {
    log_error("reload refused: " + topics_error + "; the running pipelines go on unchanged");
    return;
  }
  // While the pipelines it retires drain, SIGINT/SIGTERM are still taken.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  auto wait = [&] {
    timespec moment{0, 100 * 1000 * 1000};
    int sig = sigtimedwait(&stop_signals, nullptr, &moment);
    if (sig == SIGINT || sig == SIGTERM) on_stop_signal(sig, signals_seen, runtime);
  };
  const std::string changed = runtime.apply(next->config, wait);
  log_info("reload: " + changed);
  Generation generation{std::move(next), {}};
  const auto& defined = generation.loaded->config.pipelines;
  for (const auto& p : runtime.pipelines())
    if (std::any_of(defined.begin(), defined.end(), [&](const PipelineConfig& c) { return &c == &p->config(); }))
      generation.pipelines.push_back(p);
  generations.push_back(std::move(generation));
  // Those whose pipelines are all gone are freed (each reload kept the whole config: a
  // config of thousands of tenants cost MBs per reload).
  std::erase_if(generations, [](const Generation& g) {
    return std::all_of(g.pipelines.begin(), g.pipelines.end(), [](const auto& w) { return w.expired(); });
  });
}

}  // namespace

int run_pipelines(const Config& config, const std::string& data_dir, const RunOptions& options) {
  // Signals are taken by this thread with sigtimedwait; every other thread inherits the
  // blocked mask.
  block_stop_signals();
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, kPipelineEndedSignal);
  std::vector<Generation> generations;  // configs reloads started pipelines from

  Runtime runtime(config, data_dir);
  std::string error;
  if (!runtime.start_services(error)) {
    log_error(error);
    return kServicesUnavailable;
  }
  // Every stage's own checks, services included, before anything runs.
  Diagnostics problems;
  std::vector<std::string> unreachable;
  CheckServices services = runtime.check_services();
  check_stages(config, services, true, problems, unreachable);  // an unusable registry too
  if (!problems.empty()) {
    std::fputs(problems.format().c_str(), stderr);
    std::fprintf(stderr, "%zu problem(s); nothing was started\n", problems.size());
    return kInvalidInput;
  }
  for (const auto& u : unreachable) log_error(u);
  if (!unreachable.empty()) {
    log_error("a service a stage needs cannot be used; nothing was started");
    return kServicesUnavailable;
  }

  set_log_interceptor(&clear_progress_line);
  std::unique_ptr<AdminServer> admin;
  if (!options.admin_address.empty()) {
    admin = std::make_unique<AdminServer>([&runtime] { return runtime.pipelines(); }, runtime.services());
    if (!admin->start(options.admin_address, config.admin_token, error)) {
      log_error(error);
      // A port taken is the machine's state, as for [http]; a malformed address is the input's.
      return error.rfind("cannot listen", 0) == 0 ? kServicesUnavailable : kInvalidInput;
    }
  }
  std::unique_ptr<RouteServer> routes;
  if (!config.http.listen.empty()) {
    routes = std::make_unique<RouteServer>(config.http, runtime.services());
    if (!routes->start(error)) {
      log_error(error);
      return kServicesUnavailable;
    }
  }
  const pthread_t main_thread = pthread_self();
  runtime.services().pipeline_ended = [main_thread] { pthread_kill(main_thread, kPipelineEndedSignal); };
  auto started = Clock::now();
  runtime.start_pipelines();
  if (admin) admin->pipelines_started();

  Progress progress(runtime, options);
  FileWatch watch(options.watched_files, options.watched_stamps);
  int signals_seen = 0;
  while (true) {
    timespec wait{0, 100 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGHUP && !runtime.services().stopping) {
      log_info("SIGHUP");
      reload(runtime, options, generations, signals_seen);
    } else if (watch.changed() && !runtime.services().stopping) {
      log_info("--watch: a config file changed");
      reload(runtime, options, generations, signals_seen);
    }
    if (sig == SIGINT || sig == SIGTERM) on_stop_signal(sig, signals_seen, runtime);
    bool all_done = runtime.supervise();
    progress.tick(false);
    // A file of [http] routes alone serves them until it is told to stop.
    const bool only_serving = routes && runtime.pipelines().empty() && signals_seen == 0;
    if (all_done && !only_serving) break;
  }
  runtime.join();
  progress.tick(true);
  set_log_interceptor(nullptr);

  report(runtime.pipelines(), Clock::now() - started, options.stats_file);
  int failed = 0;
  for (auto& p : runtime.pipelines()) {
    if (p->state().failed()) {
      ++failed;
      if (!p->state().failure_logged) log_error(p->state().failure_message());
    }
  }
  admin.reset();
  routes.reset();
  if (failed) {
    log_error(std::to_string(failed) + " of " + std::to_string(runtime.pipelines().size()) +
              " pipeline(s) failed");
    return kPipelineFailed;
  }
  log_info(runtime.services().stopping ? "stopped cleanly" : "all pipelines ended");
  return kOk;
}

}  // namespace pipehost::host
