#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <map>
#include <set>

#include <pipehost/testing.hpp>

#include "datagen_source.hpp"
#include "foods.hpp"
#include "tenants.hpp"
#include "trades.hpp"
#include "transactions.hpp"

using namespace pipehost;
using namespace pipehost::datagen;

TEST_CASE("account numbers are distinct IBAN-like strings with valid check digits") {
  TransactionGenerator g(7, 20);
  std::set<std::string> unique(g.accounts().begin(), g.accounts().end());
  CHECK(unique.size() == 20);
  for (const auto& a : g.accounts()) {
    REQUIRE(a.size() == 22);
    CHECK(a.substr(0, 2) == "GB");
    // ISO 13616: move the first four characters to the end; the number mod 97 is 1.
    std::string r = a.substr(4) + a.substr(0, 4);
    int rem = 0;
    for (char c : r) {
      int v = (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : c - '0';
      rem = (v >= 10 ? rem * 100 + v : rem * 10 + v) % 97;
    }
    CHECK(rem == 1);
  }
}

TEST_CASE("same seed gives the same records; the key is the account number") {
  TransactionGenerator a(42, 20), b(42, 20), c(43, 20);
  Value va, vb, vc;
  const std::string ka = a.make(5, 1, va);
  b.make(5, 1, vb);
  c.make(5, 1, vc);
  CHECK(va.field("transaction_id")->to_text() == vb.field("transaction_id")->to_text());
  CHECK(va.field("transaction_id")->to_text() != vc.field("transaction_id")->to_text());
  CHECK(ka == va.field("account_number")->to_text());
  CHECK(va.field("transaction_id")->as<std::string>()->size() == 36);
}

// Expected values computed outside this code (Python, from the documented algorithm:
// splitmix64 draws, uuid from the 4th and 5th, reference from the 3rd), so a faster
// implementation cannot change the records a seed gives.
TEST_CASE("transaction id and reference are the documented draws: a v4 uuid and TRX + 12 base-36") {
  TransactionGenerator g(42, 20);
  Value v;
  g.make(7, 0, v);
  CHECK(v.field("transaction_id")->to_text() == "5efa3eb3-c4a2-4ccc-8d76-7253b396f49b");
  CHECK(v.field("transaction_reference")->to_text() == "TRX1SKCU691KNKZ");
}

TEST_CASE("amounts are in [1, 1000] with two decimals and match amount_cents") {
  TransactionGenerator g(1, 20);
  for (std::uint64_t i = 0; i < 10000; ++i) {
    Value v;
    g.make(i, 0, v);
    double amount = *v.field("amount")->as<double>();
    CHECK(amount >= 1.0);
    CHECK(amount <= 1000.0);
    CHECK(static_cast<std::int64_t>(amount * 100 + 0.5) == g.amount_cents(i));
  }
}

TEST_CASE("trades: seed 002's shape, repeatable, timestamps RFC 3339 with nanoseconds") {
  TradeGenerator a(9, false), b(9, false), keyed(9, true);
  Value va, vb, vk;
  CHECK(a.make(3, 0, va).empty());
  b.make(3, 0, vb);
  CHECK(va == vb);
  CHECK(keyed.make(3, 0, vk) == *va.field("id")->as<std::string>());
  for (std::uint64_t i = 0; i < 2000; ++i) {
    Value v;
    a.make(i, 0, v);
    const std::string& id = *v.field("id")->as<std::string>();
    CHECK(id[0] == 'T');
    CHECK(std::stoi(id.substr(1)) < 100000);
    CHECK(*v.field("version")->as<std::int64_t>() < 100);
    CHECK(v.field("counter_party")->as<std::string>()->rfind("CP-", 0) == 0);
    CHECK(v.field("expired")->is<bool>());
    const std::string& created = *v.field("created_at")->as<std::string>();
    const std::string& matures = *v.field("matures_at")->as<std::string>();
    REQUIRE(created.size() == 30);
    CHECK(created.back() == 'Z');
    CHECK(created < matures);  // same format: text order is time order
  }
  CHECK(rfc3339_nanos(1714566896123456789) == "2024-05-01T12:34:56.123456789Z");
}

TEST_CASE("food: seed 003's 107 names, uniformly, no key") {
  FoodGenerator g(3);
  CHECK(FoodGenerator::names().size() == 107);
  CHECK(std::find(FoodGenerator::names().begin(), FoodGenerator::names().end(), "foie-gras") !=
        FoodGenerator::names().end());
  std::map<std::string, int> seen;
  for (std::uint64_t i = 0; i < 107000; ++i) {
    Value v;
    CHECK(g.make(i, 0, v).empty());
    seen[*v.field("food")->as<std::string>()]++;
  }
  CHECK(seen.size() == 107);
  for (const auto& [name, n] : seen) CHECK(n > 700);  // ~1000 each
}

TEST_CASE("tenant events: destinations upper-cased and taken in turn, keyed <id>:<DESTINATION>") {
  TenantEventGenerator g(3, "123456", "financial", {"FINANCE", "marketing"});
  std::map<std::string, int> per_key;
  std::set<std::string> payloads;
  for (std::uint64_t i = 0; i < 8; ++i) {
    Value v;
    const std::string key = g.make(i, 1733011200123456, v);
    ++per_key[key];
    const std::string dest = v.field("destination_service_type")->to_text();
    CHECK(dest == (i % 2 == 0 ? "FINANCE" : "MARKETING"));
    CHECK(key == "123456:" + dest);
    CHECK(*v.field("origin_service_id") == Value("123456"));
    CHECK(*v.field("origin_service_type") == Value("financial"));
    CHECK(*v.field("event_timestamp") == Value(std::int64_t{1733011200123}));
    const std::string payload = v.field("payload")->to_text();
    CHECK(payload.rfind("dummy-payload ", 0) == 0);
    CHECK(payload.size() == 14 + 36);
    payloads.insert(payload);
  }
  CHECK(per_key["123456:FINANCE"] == 4);
  CHECK(per_key["123456:MARKETING"] == 4);
  CHECK(payloads.size() == 8);
}

// A pause (or a slow sink) is not made up in a burst: at rate = 2, 2.5 s without a poll
// used to owe 5 records, sent at once.
TEST_CASE("datagen: time spent paused is owed for at most a second") {
  pipehost::testing::StageHarness<DatagenSource> h({{"count", std::int64_t{0}}, {"rate", 2.0}});
  h->start();
  Batch b;
  h->poll(b, Millis(0));
  CHECK(b.records.size() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  Batch after;
  h->poll(after, Millis(0));
  CHECK(after.records.size() >= 2);
  CHECK(after.records.size() <= 3);  // a second's worth (2), and the one due now
}
