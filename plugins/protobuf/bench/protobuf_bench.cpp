// Throughput of protobuf_encode and protobuf_decode on Transactions, through the same
// factories the host uses, with the in-memory registry. Not a test: numbers only.
//   protobuf_bench [records]   (default 1,000,000)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <pipehost/testing.hpp>

#include "components.hpp"

using namespace pipehost;

namespace {

Value transaction(int i) {
  static const auto schema = StructSchema::make(
      {"transaction_id", "account_number", "transaction_reference", "transaction_datetime", "amount"});
  Struct s{schema, {}};
  s.fields = {"6f1c2d4e-" + std::to_string(100000000 + i), "ACC" + std::to_string(1000 + i % 20),
              "REF-" + std::to_string(i), Timestamp{1700000000000000 + i * 1000LL}, 10.0 + i % 1000 * 0.25};
  return s;
}

std::unique_ptr<TransformStage> make(const PluginSpec& spec, int index, testing::TestContext& context,
                                     std::map<std::string, OptionValue> given) {
  const ComponentSpec& c = spec.components[static_cast<std::size_t>(index)];
  std::string error;
  auto stage = c.make_transform(testing::options_for(c.options, given), context, error);
  if (!stage || !stage->start().is_ok()) {
    std::fprintf(stderr, "cannot start %s: %s\n", c.name.c_str(), error.c_str());
    std::exit(1);
  }
  return stage;
}

}  // namespace

int main(int argc, char** argv) {
  const long total = argc > 1 ? std::atol(argv[1]) : 1000000;
  const std::size_t batch_size = 512;
  testing::TestContext context;
  context.data_directory = PIPEHOST_TEST_DATA_DIR;
  const PluginSpec spec = protobuf::plugin_spec();
  auto encode = make(spec, 0, context, {{"message", "Transaction"}, {"topic", "bench"}});
  auto decode = make(spec, 1, context, {});

  std::vector<Batch> batches;
  for (long done = 0; done < total;) {
    Batch b;
    for (std::size_t i = 0; i < batch_size && done < total; ++i, ++done)
      b.records.emplace_back().value = transaction(static_cast<int>(done));
    batches.push_back(std::move(b));
  }
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  for (auto& b : batches)
    if (!encode->process(b).is_ok()) return 1;
  auto t1 = Clock::now();
  std::size_t bytes = 0;
  for (auto& b : batches)
    for (auto& r : b.records) {
      bytes += r.payload.size();
      r.value = Value();
    }
  auto t2 = Clock::now();
  for (auto& b : batches)
    if (!decode->process(b).is_ok() || !b.rejections.empty()) return 1;
  auto t3 = Clock::now();
  const auto rate = [&](Clock::duration d) {
    return static_cast<double>(total) / std::chrono::duration<double>(d).count();
  };
  std::printf("records %ld, avg payload %.1f bytes\n", total, static_cast<double>(bytes) / static_cast<double>(total));
  std::printf("encode: %.2f M records/s\n", rate(t1 - t0) / 1e6);
  std::printf("decode: %.2f M records/s\n", rate(t3 - t2) / 1e6);
  return 0;
}
