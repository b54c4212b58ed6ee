// The SDK's walk over a registered schema's references (pipehost/schema_references.hpp),
// which the protobuf and Avro decoders and the Avro encoder use.
#include <doctest/doctest.h>

#include <pipehost/schema_references.hpp>
#include <pipehost/testing.hpp>

using namespace pipehost;

namespace {

std::vector<std::string> names(const std::vector<ReferencedSchema>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) out.push_back(r.name);
  return out;
}

int add(testing::MemorySchemaRegistry& registry, const std::string& subject,
        std::vector<SchemaReference> references = {}) {
  int id = 0;
  REQUIRE(registry.register_schema(subject, "AVRO", "text of " + subject, references, id).is_ok());
  return id;
}

bool never(std::string_view) { return false; }

// Serves schema ids, but every referenced version fails as an unreachable registry does.
class UnreachableVersions final : public SchemaRegistry {
 public:
  Status register_schema(std::string_view, std::string_view, std::string_view,
                         int&) noexcept override {
    return Status::fatal("unused");
  }
  Status register_schema(std::string_view, std::string_view, std::string_view,
                         const std::vector<SchemaReference>&, int&, int&) noexcept override {
    return Status::fatal("unused");
  }
  Status schema_by_id(int id, RegisteredSchema& out) noexcept override {
    out = RegisteredSchema{id, "AVRO", "{}", {{"a.B", "b", 1}}};
    return Status::ok();
  }
  Status latest_schema(std::string_view, RegisteredSchema&) noexcept override {
    return Status::fatal("unused");
  }
  Status schema_version(std::string_view, int, RegisteredSchema&) noexcept override {
    return Status::retriable("connection refused");
  }
};

}  // namespace

TEST_CASE("collect_references: each reference once, after the ones it references") {
  testing::MemorySchemaRegistry registry;
  add(registry, "base");
  add(registry, "mid", {{"base.proto", "base", 1}});
  const int top = add(registry, "top",
                      {{"mid.proto", "mid", 1},
                       {"base.proto", "base", 1},
                       {"google/protobuf/timestamp.proto", "absent", 1}});
  RegisteredSchema schema;
  REQUIRE(registry.schema_by_id(top, schema).is_ok());
  std::vector<ReferencedSchema> out;
  auto well_known = [](std::string_view name) { return name.starts_with("google/protobuf/"); };
  REQUIRE(collect_references(registry, schema, "import", well_known, out).is_ok());
  CHECK(names(out) == std::vector<std::string>{"base.proto", "mid.proto"});
  CHECK(out[0].schema == "text of base");
  CHECK(out[1].schema == "text of mid");
}

TEST_CASE("collect_references: a missing version names the reference; a cycle ends") {
  testing::MemorySchemaRegistry registry;
  const int top = add(registry, "top", {{"acme.Money", "money", 3}});
  RegisteredSchema schema;
  REQUIRE(registry.schema_by_id(top, schema).is_ok());
  std::vector<ReferencedSchema> out;
  Status s = collect_references(registry, schema, "reference", never, out);
  CHECK(s.code() == Code::invalid);
  CHECK(s.message() ==
        "its reference acme.Money is registered as subject 'money' version 3, which the registry "
        "does not have (subject money has no version 3)");

  // a refers to b, b to a (registered a, then b, then a again naming b: version 2).
  add(registry, "a");
  add(registry, "b", {{"a", "a", 2}});
  const int a2 = add(registry, "a", {{"b", "b", 1}});
  REQUIRE(registry.schema_by_id(a2, schema).is_ok());
  out.clear();
  REQUIRE(collect_references(registry, schema, "reference", never, out).is_ok());
  CHECK(names(out) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("collect_references: a chain of 32 references is followed, 33 are refused") {
  for (const int length : {32, 33}) {
    testing::MemorySchemaRegistry registry;
    int id = add(registry, "s0");
    for (int i = 1; i <= length; ++i)
      id = add(registry, "s" + std::to_string(i),
               {{"r" + std::to_string(i - 1), "s" + std::to_string(i - 1), 1}});
    RegisteredSchema schema;
    REQUIRE(registry.schema_by_id(id, schema).is_ok());
    std::vector<ReferencedSchema> out;
    Status s = collect_references(registry, schema, "reference", never, out);
    if (length == 32) {
      REQUIRE(s.is_ok());
      CHECK(out.size() == 32);
      CHECK(out.front().name == "r0");
    } else {
      CHECK(s.code() == Code::invalid);
      CHECK(s.message() == "references nest deeper than 32");
    }
  }
}

TEST_CASE("fetch_schema_with_references: what to remember, and what to throw") {
  testing::MemorySchemaRegistry registry;
  const int base = add(registry, "base");
  const int top = add(registry, "top", {{"acme.Base", "base", 1}});
  const int dangling = add(registry, "dangling", {{"acme.Gone", "gone", 1}});
  RegisteredSchema schema;
  std::vector<ReferencedSchema> refs;
  CHECK(fetch_schema_with_references(registry, top, "reference", never, schema, refs).empty());
  CHECK(schema.id == top);
  REQUIRE(refs.size() == 1);
  CHECK(refs[0].schema == "text of base");
  CHECK(base != top);

  refs.clear();
  CHECK(fetch_schema_with_references(registry, 99, "reference", never, schema, refs) ==
        "unknown schema id 99: schema id 99 not found");
  CHECK(fetch_schema_with_references(registry, dangling, "import", never, schema, refs) ==
        "schema id " + std::to_string(dangling) +
            ": its import acme.Gone is registered as subject 'gone' version 1, which the "
            "registry does not have (subject gone has no version 1)");

  UnreachableVersions unreachable;
  CHECK_THROWS_WITH_AS(
      fetch_schema_with_references(unreachable, 7, "reference", never, schema, refs),
      "fetching the references of schema id 7: connection refused", RetriableError);
}
