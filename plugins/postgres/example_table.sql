CREATE TABLE IF NOT EXISTS example_trades (
  id text, version bigint, counter_party text, book_id text, expired boolean,
  matures_at timestamptz, created_at timestamptz, PRIMARY KEY (id, version));
