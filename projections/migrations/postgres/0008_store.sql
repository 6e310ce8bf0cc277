-- The bookstore (Postgres; the `store` projection): prices and stock, orders and their lines, and
-- the hourly sales buckets bestsellers are summed from. A line is fed by two streams (its order's,
-- and its book's stock stream, which records the reservation), so rows carry `position`, the
-- global position of the last event applied to them, and every write is guarded by it. A bucket
-- moves only together with its order's row (in one transaction, under that row's guard), so
-- replaying an event counts nothing twice. Ids are text in the C collation (byte order, as in
-- SQLite); times are microseconds since the epoch; `bucket_hour` is the hour number of an order's
-- placing time (placed_at / 3 600 000 000).
CREATE TABLE rm_stock (
    book_id     TEXT COLLATE "C" PRIMARY KEY,
    price_cents BIGINT,
    currency    TEXT,
    tracked     BOOLEAN NOT NULL DEFAULT FALSE,
    available   BIGINT,
    position    BIGINT  NOT NULL
);

-- `status`: pending (requested, its lines being reserved), placed, refused or cancelled.
CREATE TABLE rm_orders (
    order_id        TEXT COLLATE "C" PRIMARY KEY,
    member_id       TEXT COLLATE "C" NOT NULL,
    status          TEXT COLLATE "C" NOT NULL,
    currency        TEXT,
    total_cents     BIGINT  NOT NULL DEFAULT 0,
    requested_at    BIGINT  NOT NULL,
    placed_at       BIGINT,
    bucket_hour     BIGINT,
    cancelled_at    BIGINT,
    refused_book_id TEXT COLLATE "C",
    refusal_code    TEXT,
    position        BIGINT  NOT NULL
);
-- A member's orders, newest first; the scheduler's orders left pending, oldest first.
CREATE INDEX rm_orders_member ON rm_orders (member_id, placed_at, order_id);
CREATE INDEX rm_orders_status ON rm_orders (status, requested_at, order_id);

CREATE TABLE rm_order_lines (
    order_id         TEXT COLLATE "C" NOT NULL,
    book_id          TEXT COLLATE "C" NOT NULL,
    line_no          BIGINT  NOT NULL,
    quantity         BIGINT  NOT NULL,
    unit_price_cents BIGINT,
    reserved         BOOLEAN NOT NULL DEFAULT FALSE,
    released         BOOLEAN NOT NULL DEFAULT FALSE,
    position         BIGINT  NOT NULL,
    PRIMARY KEY (order_id, book_id)
);
-- Reservations still held (the scheduler gives back those of cancelled orders).
CREATE INDEX rm_order_lines_held ON rm_order_lines (order_id, book_id) WHERE reserved AND NOT released;

CREATE TABLE rm_sales_buckets (
    book_id       TEXT COLLATE "C" NOT NULL,
    bucket_hour   BIGINT NOT NULL,
    units         BIGINT NOT NULL DEFAULT 0,
    revenue_cents BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (book_id, bucket_hour)
);
-- Bestsellers: the buckets of a window.
CREATE INDEX rm_sales_buckets_hour ON rm_sales_buckets (bucket_hour, book_id);
