// Fake bank transactions in the shape of seed 000's Transaction message. Record k is a
// pure function of (seed, k), so the same seed gives the same records whatever the
// number of tasks; only transaction_datetime is the wall clock.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "generator.hpp"

namespace pipehost::datagen {

class TransactionGenerator final : public Generator {
 public:
  TransactionGenerator(std::uint64_t seed, int accounts);
  // The account numbers, IBAN-like with valid check digits, all distinct.
  const std::vector<std::string>& accounts() const { return accounts_; }
  // Fills `value` with transaction number `index` and returns its account number.
  std::string make(std::uint64_t index, std::int64_t now_micros, Value& value) const override;
  // The amount of transaction `index` in cents, as make() would give it.
  std::int64_t amount_cents(std::uint64_t index) const;

 private:
  std::uint64_t seed_;
  std::vector<std::string> accounts_;
  std::shared_ptr<const StructSchema> schema_;
};

std::string iban_like(std::uint64_t bits);

}  // namespace pipehost::datagen
