// Throughput of protobuf_encode and protobuf_decode on Transactions, through the same
// factories the host uses, with the in-memory registry. Not a test: numbers only.
//   protobuf_bench [records] [field,field... | all] [batches] [recycled]
// (default 1,000,000 records, all fields, 256 batches of 512 records, each decode into
// fresh values; `recycled` decodes over the structs the last pass left, as a running
// pipeline does, so their storage is as cold as the batches are many)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <pipehost/testing.hpp>
#include <string>

#include "protobuf_plugin.hpp"

using namespace pipehost;

namespace {

Value transaction(int i) {
  static const auto schema =
      StructSchema::make({"transaction_id", "account_number", "transaction_reference",
                          "transaction_datetime", "amount"});
  Struct s{schema, {}};
  s.fields = {"6f1c2d4e-" + std::to_string(100000000 + i), "ACC" + std::to_string(1000 + i % 20),
              "REF-" + std::to_string(i), Timestamp{1700000000000000 + i * 1000LL},
              10.0 + i % 1000 * 0.25};
  return s;
}

std::unique_ptr<TransformStage> make(const PluginSpec& spec, int index,
                                     testing::TestContext& context,
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
  std::map<std::string, OptionValue> decode_options;
  if (argc > 2 && std::string(argv[2]) != "all") {
    std::vector<std::string> fields;
    for (std::string list = argv[2]; !list.empty();) {
      const auto comma = list.find(',');
      fields.push_back(list.substr(0, comma));
      list = comma == std::string::npos ? "" : list.substr(comma + 1);
    }
    decode_options["fields"] = fields;
  }
  auto decode = make(spec, 1, context, decode_options);

  // 256 batches of 512, passed over again and again: a warm working set as in a running
  // pipeline. Each decode pass starts from null values, as records from a source do.
  const std::size_t batch_count = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 256;
  const std::string mode = argc > 4 ? argv[4] : "";
  const bool recycled = mode == "recycled" || mode == "shuffled";
  std::vector<Batch> batches(batch_count);
  for (std::size_t b = 0; b < batches.size(); ++b)
    for (std::size_t i = 0; i < batch_size; ++i)
      batches[b].records.emplace_back().value = transaction(static_cast<int>(b * batch_size + i));
  using Clock = std::chrono::steady_clock;
  Clock::duration encoding{}, decoding{};
  long done = 0;
  for (; done < total; done += static_cast<long>(batches.size() * batch_size)) {
    auto t0 = Clock::now();
    for (auto& b : batches)
      if (!encode->process(b).is_ok() || !b.rejections.empty()) return 1;
    encoding += Clock::now() - t0;
  }
  if (mode == "shuffled") {  // each record's storage somewhere else in memory
    std::vector<Value*> all;
    for (auto& b : batches)
      for (auto& r : b.records) all.push_back(&r.value);
    std::srand(7);
    for (std::size_t i = all.size() - 1; i > 0; --i)
      std::swap(*all[i], *all[static_cast<std::size_t>(std::rand()) % (i + 1)]);
  }
  if (mode == "live") {
    // As a live consumer: one batch recycled between polls, each poll bringing 256-512
    // records (what one fetch held), and other processes' work evicting the caches while
    // the task waits (a walk over 8 MiB, not timed).
    std::vector<std::string_view> payloads;
    for (auto& b : batches)
      for (auto& r : b.records) payloads.push_back(r.payload.view());
    std::vector<char> other((std::getenv("EVICT_MB") ? std::atoi(std::getenv("EVICT_MB")) : 8) << 20);
    Batch batch;
    batch.capacity = batch_size;
    std::srand(7);
    std::size_t next = 0;
    long decoded = 0;
    Clock::duration live{};
    while (decoded < total) {
      batch.recycle();
      for (std::size_t i = 0; i < other.size(); i += 64) other[i] = static_cast<char>(other[i] + 1);
      const std::size_t n = 256 + static_cast<std::size_t>(std::rand()) % 257;
      for (std::size_t i = 0; i < n; ++i) batch.add().payload.borrow(payloads[next++ % payloads.size()]);
      auto t0 = Clock::now();
      if (!decode->process(batch).is_ok() || !batch.rejections.empty()) return 1;
      live += Clock::now() - t0;
      decoded += static_cast<long>(n);
    }
    std::printf("live decode: %.2f M records/s\n",
                static_cast<double>(decoded) / std::chrono::duration<double>(live).count() / 1e6);
    return 0;
  }
  std::size_t bytes = 0;
  for (auto& b : batches)
    for (auto& r : b.records) bytes += r.payload.size();
  for (long decoded = 0; decoded < total;
       decoded += static_cast<long>(batches.size() * batch_size)) {
    if (!recycled)
      for (auto& b : batches)
        for (auto& r : b.records) r.value = Value();  // freed, as after a sink
    auto t0 = Clock::now();
    for (auto& b : batches)
      if (!decode->process(b).is_ok() || !b.rejections.empty()) return 1;
    decoding += Clock::now() - t0;
  }
  const auto rate = [&](Clock::duration d) {
    return static_cast<double>(done) / std::chrono::duration<double>(d).count();
  };
  std::printf("records %ld, avg payload %.1f bytes\n", done,
              static_cast<double>(bytes) / static_cast<double>(batches.size() * batch_size));
  std::printf("encode: %.2f M records/s\n", rate(encoding) / 1e6);
  std::printf("decode: %.2f M records/s\n", rate(decoding) / 1e6);
  return 0;
}
