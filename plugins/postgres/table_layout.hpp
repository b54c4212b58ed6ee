// What the postgres sink knows of its target table, read from the database at start:
// the columns it writes (from the record's fields, renamed by `columns`), their types,
// and the primary key. And how one field's value becomes COPY text for its column.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <pipehost/sdk.hpp>

namespace pipehost::postgres {

enum class ColumnType { text, integer, floating, numeric, boolean, timestamptz, timestamp, date,
                        json, bytea, uuid };

struct Column {
  std::string name;
  std::string field;  // the record's field written into it
  std::string type_name;  // as PostgreSQL names it (udt_name): "int8", "timestamptz", ...
  ColumnType type = ColumnType::text;
  bool not_null = false;  // NOT NULL (a primary key's columns are)
  FieldReader reader{""};
};

struct TableLayout {
  std::string table;
  std::vector<Column> columns;             // written, in table order
  std::vector<std::string> primary_key;    // column names
};

// The PostgreSQL types the sink can write, by udt_name; nullopt for others.
std::optional<ColumnType> column_type(const std::string& udt_name);

// Appends the COPY text form of `value` for `column` (\N for null), or returns why the
// value cannot go there ("" when it could). Timestamps keep microseconds: the digits of
// an RFC 3339 string past the microsecond are dropped.
std::string append_copy_text(const Column& column, const Value& value, std::string& out);

}  // namespace pipehost::postgres
