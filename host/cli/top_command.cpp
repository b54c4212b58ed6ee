#include "cli/top_command.hpp"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/admin_client.hpp"
#include "cli/commands.hpp"

namespace pipehost::host {
namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  nlohmann::json pipelines;
  Clock::time_point at;
};

bool fetch(httplib::Client& client, const httplib::Headers& headers, Sample& out, std::string& error,
           int& status) {
  auto r = client.Get("/pipelines", headers);
  status = r ? r->status : 0;
  if (!r) {
    error = "cannot reach the admin endpoint (" + httplib::to_string(r.error()) + ")";
    return false;
  }
  if (r->status != 200) {
    error = std::to_string(r->status) + " " + r->body + token_hint(r->status);
    return false;
  }
  out.pipelines = nlohmann::json::parse(r->body, nullptr, false);
  out.at = Clock::now();
  if (!out.pipelines.is_array()) {
    error = "the endpoint did not answer with a list of pipelines";
    return false;
  }
  return true;
}

double rate(const nlohmann::json& now, const nlohmann::json* before, const char* field, double seconds) {
  if (!before || seconds <= 0 || !now.contains(field) || !before->contains(field)) return 0;
  double d = now[field].get<double>() - (*before)[field].get<double>();
  return d < 0 ? 0 : d / seconds;  // a pipeline restarted by a reload counts from 0
}

std::string table(const Sample& before, const Sample& now, const std::string& address) {
  double seconds = std::chrono::duration<double>(now.at - before.at).count();
  std::map<std::string, const nlohmann::json*> previous;
  for (const auto& p : before.pipelines) previous[p["name"].get<std::string>()] = &p;
  char line[512];
  std::time_t t = std::time(nullptr);
  char clock[16];
  std::strftime(clock, sizeof clock, "%H:%M:%S", std::localtime(&t));
  std::string out = "pipehost top  " + address + "  " + clock + "\n";
  // As wide as the longest name (up to 64: a longer one is cut with "~", still told apart by
  // its start), so that two pipelines whose names share a prefix are not shown alike.
  int width = 22;
  for (const auto& p : now.pipelines) width = std::max(width, static_cast<int>(p["name"].get<std::string>().size()));
  width = std::min(width, 64);
  std::snprintf(line, sizeof line, "%-*s %-10s %10s %10s %9s %9s %9s %8s\n", width, "PIPELINE / STAGE", "STATE",
                "READ/s", "ACKED/s", "REJECTED", "IN-FLIGHT", "LAG", "RESTARTS");
  out += line;
  for (const auto& p : now.pipelines) {
    std::string name = p["name"];
    auto it = previous.find(name);
    const std::string shown = static_cast<int>(name.size()) > width ? name.substr(0, width - 1) + "~" : name;
    const nlohmann::json* b = it == previous.end() ? nullptr : it->second;
    std::string lag = p["lag"].is_null() ? "-" : std::to_string(p["lag"].get<std::int64_t>());
    std::snprintf(line, sizeof line, "%-*s %-10s %10.1f %10.1f %9llu %9llu %9s %8llu\n", width, shown.c_str(),
                  p["state"].get<std::string>().c_str(), rate(p, b, "records_read", seconds),
                  rate(p, b, "records_acknowledged", seconds),
                  static_cast<unsigned long long>(p["records_rejected"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(p["in_flight_records"].get<std::uint64_t>()), lag.c_str(),
                  static_cast<unsigned long long>(p["restarts"].get<std::uint64_t>()));
    out += line;
    const auto& stages = p["stages"];
    for (std::size_t i = 0; i < stages.size(); ++i) {
      const auto& s = stages[i];
      const nlohmann::json* bs = b && i < (*b)["stages"].size() ? &(*b)["stages"][i] : nullptr;
      double cpu = rate(s, bs, "cpu_seconds", seconds) * 100;
      std::snprintf(line, sizeof line, "  %-20.20s in %9.1f/s  out %9.1f/s  rejected %7llu  cpu %5.1f%%\n",
                    s["stage"].get<std::string>().c_str(), rate(s, bs, "records_in", seconds),
                    rate(s, bs, "records_out", seconds),
                    static_cast<unsigned long long>(s["records_rejected"].get<std::uint64_t>()), cpu);
      out += line;
    }
    std::string trouble = p["failure"].get<std::string>();
    if (trouble.empty()) trouble = p["stalled"].get<std::string>();
    if (!trouble.empty()) out += "  ! " + trouble.substr(0, 200) + "\n";
  }
  return out;
}

}  // namespace

int top_command(const std::string& address, double interval_s, bool once) {
  AdminClient admin = admin_client(address);
  if (!admin.client || interval_s <= 0) {
    std::fputs("pipehost top: --admin wants HOST:PORT and --interval a positive number of seconds\n", stderr);
    return kInvalidInput;
  }
  httplib::Client& client = *admin.client;
  client.set_read_timeout(std::chrono::seconds(10));
  const httplib::Headers& headers = admin.headers;
  bool terminal = isatty(STDOUT_FILENO) && !once;
  Sample before, now;
  std::string error;
  int status = 0;
  if (!fetch(client, headers, before, error, status)) {
    if (status == 401 || status == 403) {
      std::fprintf(stderr, "pipehost top: %s at %s\n", error.c_str(), address.c_str());
      return kInvalidInput;
    }
    std::fprintf(stderr, "pipehost top: %s at %s: is pipehost running with --admin %s?\n", error.c_str(),
                 address.c_str(), address.c_str());
    return kServicesUnavailable;
  }
  // Ctrl-C (or SIGTERM) ends top with exit code 0, as its help says, between two frames.
  static volatile std::sig_atomic_t stop_requested = 0;
  std::signal(SIGINT, [](int) { stop_requested = 1; });
  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  const auto pause = std::chrono::duration<double>(interval_s);
  for (;;) {
    for (auto until = std::chrono::steady_clock::now() + pause; std::chrono::steady_clock::now() < until;) {
      if (stop_requested) return kOk;
      std::this_thread::sleep_for(std::min<std::chrono::duration<double>>(pause, std::chrono::milliseconds(50)));
    }
    if (!fetch(client, headers, now, error, status)) {
      std::fprintf(stderr, "pipehost top: %s (the process ended?)\n", error.c_str());
      return once ? kServicesUnavailable : kOk;
    }
    std::string text = table(before, now, address);
    if (terminal) std::fputs("\033[H\033[2J", stdout);
    std::fputs(text.c_str(), stdout);
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::fprintf(stderr, "pipehost top: cannot write to stdout: %s\n", std::strerror(errno));
      return kPipelineFailed;
    }
    if (once) return kOk;
    before = std::move(now);
  }
}

}  // namespace pipehost::host
