-- The order service's schema, as in Debezium's outbox example: a purchase
-- order, its order lines and an outbox table, in schema `inventory` of
-- database `orderdb`. Loaded by `scripts/postgres start` into a fresh cluster.
--
-- Replica identity stays at PostgreSQL's default (the primary key): an
-- update's `before` is null and a delete's `before` holds only the key, which
-- is what Tributary has to cope with. The publication for pgoutput is made by
-- Debezium (publication.autocreate.mode=filtered), one per connector.

CREATE SCHEMA inventory;

CREATE TYPE inventory.order_priority AS ENUM ('LOW', 'NORMAL', 'HIGH', 'URGENT');

-- Besides the keys and statuses, the columns carry the types whose Debezium
-- encoding a reader has to decode (NUMERIC as bytes, DATE as epoch days,
-- TIMESTAMPTZ as ZonedTimestamp, jsonb, uuid, an enum, text[]) and a text
-- column that is often larger than 8 kB: STORAGE EXTERNAL keeps such a value
-- out of line and uncompressed, so an UPDATE that leaves it alone sends
-- Debezium's unavailable-value placeholder instead. The defaults only serve
-- writers that do not know the newer columns; order-service sets them all.
CREATE TABLE inventory.purchaseorder (
  id            serial  PRIMARY KEY,
  customer_id   integer NOT NULL,
  order_date    date    NOT NULL,
  status        text    NOT NULL,
  shipping_cost numeric(8, 2) NOT NULL DEFAULT 0,
  placed_at     timestamptz NOT NULL DEFAULT now(),
  attributes    jsonb,
  tracking_id   uuid    NOT NULL DEFAULT gen_random_uuid(),
  priority      inventory.order_priority NOT NULL DEFAULT 'NORMAL',
  tags          text[]  NOT NULL DEFAULT '{}',
  notes         text
);
ALTER TABLE inventory.purchaseorder ALTER COLUMN notes SET STORAGE EXTERNAL;

-- weight_kg is a NUMERIC without scale: each value keeps its own (Debezium's
-- VariableScaleDecimal).
CREATE TABLE inventory.orderline (
  id        serial  PRIMARY KEY,
  order_id  integer NOT NULL REFERENCES inventory.purchaseorder (id),
  product   text    NOT NULL,
  quantity  integer NOT NULL,
  price     numeric(10, 2) NOT NULL,
  status    text    NOT NULL,
  weight_kg numeric
);

CREATE INDEX orderline_order_id ON inventory.orderline (order_id);

CREATE TABLE inventory.outbox (
  id            uuid PRIMARY KEY,
  aggregatetype text NOT NULL,
  aggregateid   text NOT NULL,
  type          text NOT NULL,
  payload       jsonb
);

-- Debezium's signal table (signal.data.collection): a row with type
-- 'execute-snapshot' starts an incremental snapshot while changes stream.
CREATE TABLE inventory.debezium_signal (
  id   varchar(42) PRIMARY KEY,
  type varchar(32) NOT NULL,
  data varchar(2048)
);

-- Order ids start at 1001 as in the order service's sample data, so they never
-- look like line ids, counters or offsets.
ALTER SEQUENCE inventory.purchaseorder_id_seq RESTART WITH 1001;
