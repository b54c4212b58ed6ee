// sqlite_query: an HTTP route answering with the rows of a fixed SQL query as a JSON array
// of objects, e.g. GET /aggregated -> [{"count": 3, "food": "mayo"}, ...] as seed 003's
// Flask API answered `select * from aggregated`. Keys sorted as Flask's jsonify sorts
// them; integers and reals as numbers, text as strings, NULL as null, blobs as base64.
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <pipehost/sdk.hpp>

#include "database.hpp"

namespace pipehost::sqlite {

struct SqliteQueryConfig {
  std::string database;
  std::optional<std::string> template_file;
  std::string query;
  bool sort_keys = true;
  int busy_timeout_ms = 5000;
  int max_response_mb = 64;

  static void declare(OptionList<SqliteQueryConfig>& o);
  void check(Checker& c) const;
};

class SqliteQuery final : public Route {
 public:
  using Config = SqliteQueryConfig;
  SqliteQuery(const Config& config, Context& context);
  void start() override;
  HttpResponse handle(const HttpRequest& request) override;

 private:
  Config config_;
  std::unique_ptr<Database> db_;
  Statement statement_;
  std::mutex mutex_;  // one connection, requests from several threads
  Counter& served_;
};

}  // namespace pipehost::sqlite
