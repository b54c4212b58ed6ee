// A registered schema's references, fetched from the registry: what a plugin needs before
// it can parse a schema that imports (protobuf) or names (Avro) schemas of other subjects.
#pragma once
#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pipehost/context.hpp"
#include "pipehost/status.hpp"

namespace pipehost {

struct ReferencedSchema {
  std::string name;    // as the reference names it: "acme/money.proto", "acme.Money"
  std::string schema;  // the text registered under the reference's subject and version
};

// collect_references' skip for a format with no built-in schemas: follow every reference.
inline bool skip_no_reference(std::string_view) { return false; }

// The longest chain of references followed; a longer one is refused.
inline constexpr int kDeepestSchemaReference = 32;

namespace detail {
template <class Skip>
Status collect_references(SchemaRegistry& registry, const RegisteredSchema& schema,
                          std::string_view noun, const Skip& skip, std::set<std::string>& seen,
                          std::vector<ReferencedSchema>& out, int depth) {
  for (const SchemaReference& r : schema.references) {
    if (skip(r.name) || !seen.insert(r.name).second) continue;
    if (depth >= kDeepestSchemaReference)
      return Status::invalid("references nest deeper than " +
                             std::to_string(kDeepestSchemaReference));
    RegisteredSchema referenced;
    Status s = registry.schema_version(r.subject, r.version, referenced);
    if (s.code() == Code::invalid)
      return Status::invalid("its " + std::string(noun) + " " + r.name +
                             " is registered as subject '" + r.subject + "' version " +
                             std::to_string(r.version) + ", which the registry does not have (" +
                             s.message() + ")");
    if (!s.is_ok()) return s;
    if (Status deeper = collect_references(registry, referenced, noun, skip, seen, out, depth + 1);
        !deeper.is_ok())
      return deeper;
    out.push_back({r.name, std::move(referenced.schema)});
  }
  return Status::ok();
}
}  // namespace detail

// Appends every schema `schema` references, and those they reference, each once, in
// dependency order (a schema after the ones it references). skip(name) leaves a reference
// out (a protobuf plugin's well-known imports, which libprotobuf has built in). A
// reference the registry lacks is invalid, named as "its <noun> <name> is registered as
// subject 'S' version V, which the registry does not have (...)"; any other failure is
// returned as the registry gave it (retriable: unreachable).
template <class Skip>
Status collect_references(SchemaRegistry& registry, const RegisteredSchema& schema,
                          std::string_view noun, const Skip& skip,
                          std::vector<ReferencedSchema>& out) {
  std::set<std::string> seen;
  return detail::collect_references(registry, schema, noun, skip, seen, out, 0);
}

// A decoder's fetch of writer schema `id` with its references. Returns empty when both
// arrived, else why the registry cannot serve them (an unknown id, a reference it lacks):
// the decoder refuses the id's records with it and asks again later, as a producer may
// register late. Any other failure (the registry unreachable) is thrown as throw_if_error
// does: nothing is to be remembered.
template <class Skip>
std::string fetch_schema_with_references(SchemaRegistry& registry, int id, std::string_view noun,
                                         const Skip& skip, RegisteredSchema& schema,
                                         std::vector<ReferencedSchema>& references) {
  const std::string what = "schema id " + std::to_string(id);
  Status status = registry.schema_by_id(id, schema);
  if (status.code() == Code::invalid) return "unknown " + what + ": " + status.message();
  throw_if_error(status, "fetching " + what);
  status = collect_references(registry, schema, noun, skip, references);
  if (status.code() == Code::invalid) return what + ": " + status.message();
  throw_if_error(status, "fetching the references of " + what);
  return {};
}

// How many unknown schema ids a decoder asks the registry about per second. Records
// framed with ever-new ids (garbage, any binary data starting with a zero byte) cost a
// registry round trip each, on a client every stage of the process shares: past the
// budget, a new id's records are refused without asking (said in their reason), and asked
// about again a second later. Ids the registry knows never count.
class UnknownIdBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kPerSecond = 20;
  // An id the registry did not know is asked about again this much later: a producer may
  // register its schema late.
  static constexpr auto kRetryUnknown = std::chrono::seconds(30);

  // A decoder's fetch of writer schema `id`, as fetch_schema_with_references, when the
  // budget allows. Returns empty when the schema arrived, else why the id's records are
  // refused, with when to ask about it again in `retry_after` (left as it was on success).
  template <class Skip>
  std::string fetch(SchemaRegistry& registry, int id, std::string_view noun, const Skip& skip,
                    RegisteredSchema& schema, std::vector<ReferencedSchema>& references,
                    Clock::time_point& retry_after) {
    const auto now = Clock::now();
    if (!may_ask(now)) {
      retry_after = now + std::chrono::seconds(1);
      return refusal(id);
    }
    std::string error = fetch_schema_with_references(registry, id, noun, skip, schema, references);
    if (!error.empty()) {
      failed();
      retry_after = Clock::now() + kRetryUnknown;
    }
    return error;
  }

  // Whether a lookup may go to the registry now.
  bool may_ask(Clock::time_point now) {
    if (now - window_start_ >= std::chrono::seconds(1)) {
      window_start_ = now;
      failed_ = 0;
    }
    return failed_ < kPerSecond;
  }
  void failed() { ++failed_; }
  static std::string refusal(int id) {
    return "schema id " + std::to_string(id) + " not looked up: more than " + std::to_string(kPerSecond) +
           " unknown schema ids this second (records not framed for the registry?); asked again later";
  }

 private:
  Clock::time_point window_start_{};
  int failed_ = 0;
};

}  // namespace pipehost
