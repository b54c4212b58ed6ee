#include "transactions.hpp"

#include <set>

namespace pipehost::datagen {

std::string iban_like(std::uint64_t bits) {
  // GBkk BANK dddddddddddddd with real ISO 13616 check digits.
  const char* banks[] = {"JAGO", "WEST", "NWBK", "BARC", "MIDL"};
  std::string bank = banks[bits % 5];
  std::string digits;
  std::uint64_t n = bits / 5;
  for (int i = 0; i < 14; ++i, n /= 10) digits += static_cast<char>('0' + n % 10);
  std::string rearranged = bank + digits + "GB00";
  int remainder = 0;
  for (char c : rearranged) {
    int v = (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : c - '0';
    remainder = (v >= 10 ? remainder * 100 + v : remainder * 10 + v) % 97;
  }
  int check = 98 - remainder;
  return "GB" + std::string(1, static_cast<char>('0' + check / 10)) +
         static_cast<char>('0' + check % 10) + bank + digits;
}

TransactionGenerator::TransactionGenerator(std::uint64_t seed, int accounts) : seed_(seed) {
  std::set<std::string> seen;
  for (std::uint64_t i = 0; static_cast<int>(accounts_.size()) < accounts; ++i) {
    std::string a = iban_like(mix(seed ^ mix(0xacc0u + i)));
    if (seen.insert(a).second) accounts_.push_back(a);
  }
  schema_ = StructSchema::make({"transaction_id", "account_number", "transaction_reference",
                                "transaction_datetime", "amount"});
}

std::int64_t TransactionGenerator::amount_cents(std::uint64_t index) const {
  Draws d{mix(seed_ ^ mix(index))};
  d.next();  // account
  return 100 + static_cast<std::int64_t>(d.next() % 99901);  // [1.00, 1000.00]
}

std::string TransactionGenerator::make(std::uint64_t index, std::int64_t now_micros,
                                      Value& value) const {
  Draws d{mix(seed_ ^ mix(index))};
  const std::string& account = accounts_[d.next() % accounts_.size()];
  std::int64_t cents = 100 + static_cast<std::int64_t>(d.next() % 99901);
  char reference[15] = {'T', 'R', 'X'};
  std::uint64_t r = d.next();
  for (int i = 3; i < 15; ++i, r /= 36) reference[i] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r % 36];
  char id[36];
  uuid_v4(d, id);
  // In place: a record reused from an earlier batch keeps its strings' storage.
  std::vector<Value>& fields = value.overwrite_struct(schema_, 5).fields;
  fields[0].assign_string({id, sizeof id});
  fields[1].assign_string(account);
  fields[2].assign_string({reference, sizeof reference});
  fields[3] = Timestamp{now_micros};
  fields[4] = static_cast<double>(cents) / 100.0;
  return account;
}

}  // namespace pipehost::datagen
