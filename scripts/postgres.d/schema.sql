-- The order service's schema, as in Debezium's outbox example: a purchase
-- order, its order lines and an outbox table, in schema `inventory` of
-- database `orderdb`. Loaded by `scripts/postgres start` into a fresh cluster.
--
-- Replica identity stays at PostgreSQL's default (the primary key): an
-- update's `before` is null and a delete's `before` holds only the key, which
-- is what Tributary has to cope with. The publication for pgoutput is made by
-- Debezium (publication.autocreate.mode=filtered), one per connector.

CREATE SCHEMA inventory;

CREATE TABLE inventory.purchaseorder (
  id          serial PRIMARY KEY,
  customer_id integer NOT NULL,
  order_date  date    NOT NULL,
  status      text    NOT NULL
);

CREATE TABLE inventory.orderline (
  id       serial  PRIMARY KEY,
  order_id integer NOT NULL REFERENCES inventory.purchaseorder (id),
  product  text    NOT NULL,
  quantity integer NOT NULL,
  price    numeric(10, 2) NOT NULL,
  status   text    NOT NULL
);

CREATE INDEX orderline_order_id ON inventory.orderline (order_id);

CREATE TABLE inventory.outbox (
  id            uuid PRIMARY KEY,
  aggregatetype text NOT NULL,
  aggregateid   text NOT NULL,
  type          text NOT NULL,
  payload       jsonb
);

-- Order ids start at 1001 as in the order service's sample data, so they never
-- look like line ids, counters or offsets.
ALTER SEQUENCE inventory.purchaseorder_id_seq RESTART WITH 1001;
