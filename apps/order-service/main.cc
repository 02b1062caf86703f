// order-service: the order service's database traffic, for end-to-end runs
// against PostgreSQL (scripts/postgres) captured by Debezium.
//
//   order-service --sessions 4 --transactions 2400 --seed 7 --log FILE
//                 [--bulk-every 1200 --bulk-lines 2000] [--outbox] [--rate 200]
//
// N transactions in all, from `sessions` threads with a libpq connection each
// (connection parameters from the PG* environment variables, as printed by
// `scripts/postgres env`): place an order with 1-5 lines, cancel a line,
// change an order's status (shipping or cancelling it does the same to its
// open lines), change a line's quantity, move a line to another order, give
// a line a new primary key (UPDATE ... SET id = nextval(...): Debezium sends
// a delete and a create with one LSN), change an order's details (shipping
// cost, attributes, tags, priority; its notes left alone), replace an order's
// notes, delete an order with its lines, 2-3 of those in one transaction, and
// every K-th transaction a bulk insert of L lines over 1-3 orders. Sessions
// work on the orders this run created, picked at random.
//
// Column values, all from the session's seeded generator except the ones
// PostgreSQL picks (ids): shipping_cost numeric(8,2); placed_at timestamptz
// with microseconds (sometimes whole seconds or milliseconds); attributes
// jsonb (a quarter NULL); tracking_id uuid; priority an enum; tags text[]
// (0-3, with quotes, commas, non-ASCII); notes text, a third NULL, a third
// short, a third 8-12 kB (stored out of line, so updates that leave it alone
// make Debezium send its unavailable-value placeholder); a line's price
// numeric(10,2) and weight_kg a numeric without scale (scale 0-3, trailing
// zeros kept).
//
// Concurrency: READ COMMITTED, and every transaction first locks (SELECT ...
// FOR UPDATE, in id order) each existing order it will touch; a line is only
// changed by a transaction that holds its order (both orders for a move). So
// between that lock and COMMIT nobody else changes the touched orders or their
// lines, and the state read just before COMMIT is the state the database has
// at that commit. Deadlocks and serialization failures are retried, as is a
// transaction whose picked order was deleted meanwhile.
//
// The committed-transactions log (--log): after each COMMIT, one JSON line
//   {"txid":1234,"seq":17,"session":2,"ops":["move_line"],"outbox":1,
//    "orders":[1001,1002],"states":[{...},null]}
// txid is txid_current() read inside the transaction (Debezium's source.txId
// on a fresh cluster); seq is taken just before COMMIT from one counter of the
// process, so two transactions touching the same order have their seq in
// commit order (the later one took its lock after the earlier committed);
// orders are the orders whose row or lines the transaction changed (as the
// aggregate sees it: a moved line touches both orders) and states their
// state read inside the transaction just before COMMIT: every column of the
// order as PostgreSQL's to_json(row) writes it (json_build_object's format;
// session time zone UTC), then "lines": every column of each of its lines,
// by line id; null for a deleted order. E.g.
//   {"id":1001,"customer_id":1382,"order_date":"2023-05-17","status":"PLACED",
//    "shipping_cost":12.50,"placed_at":"2024-03-02T10:11:12.345678+00:00",
//    "attributes":{"gift": true, ...},"tracking_id":"6f1c...","priority":"HIGH",
//    "tags":["fragile","a,b"],"notes":"...",
//    "lines":[{"id":14,"order_id":1001,"product":"Gizmo XL","quantity":10,
//              "price":12.50,"status":"ENTERED","weight_kg":1.250}]}
// New columns appear in the log without a change here.
//
// Table-wide operations, each as the transaction of index N (0-based, in
// claim order) when asked for, each placing an order too, in the same
// transaction, so that the tables' next events come from it:
//   --alter-add-at N   ALTER TABLE orderline ADD COLUMN discount
//                      numeric(10,2) NOT NULL DEFAULT 0.00, gift_note text
//                      DEFAULT 'none', promised_on date DEFAULT '2024-01-01';
//                      ALTER TABLE purchaseorder ADD COLUMN channel text NOT
//                      NULL DEFAULT 'web' (IF NOT EXISTS); every order of
//                      this run is logged, its state changed shape
//   --alter-drop-at N  ALTER TABLE ... DROP COLUMN gift_note, channel (the
//                      same)
//   --hold-alter-drop FILE  the session that claims the DROP first waits
//                      until FILE exists (at most 10 min, else exit 2).
//                      Debezium reads a column's default from the catalog
//                      when it decodes a table's first change after an
//                      ALTER, not as of the change: a DROP before it has
//                      streamed the ADD takes the dropped columns' defaults
//                      out of the ADD's schema. The e2e test creates FILE
//                      once the ADD's END is on the transaction topic.
//   --truncate-at N    TRUNCATE purchaseorder, orderline (after locking both
//                      and reading which of this run's orders exist: those
//                      are logged deleted); then the new order
// At start-up the four columns are dropped if present (a previous run's).
//
// With --outbox each operation also inserts a row into inventory.outbox
// (id gen_random_uuid(), aggregatetype 'order', aggregateid the order id,
// type OrderCreated, OrderLineCancelled, ..., payload JSON).
//
// Exit codes: 0 done (summary on stdout); 1 usage; 2 database error (or no
// --hold-alter-drop file in time).
#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"

ABSL_FLAG(int, sessions, 4, "concurrent sessions, one connection each");
ABSL_FLAG(int64_t, transactions, 1000, "transactions to commit in all");
ABSL_FLAG(uint64_t, seed, 1, "seed of the sessions' random choices");
ABSL_FLAG(std::string, log, "", "committed-transactions log (JSON lines); required");
ABSL_FLAG(int64_t, bulk_every, 0, "every K-th transaction is a bulk insert; 0: none");
ABSL_FLAG(int, bulk_lines, 2000, "line inserts in one bulk transaction");
ABSL_FLAG(bool, outbox, false, "each operation also inserts an inventory.outbox row");
ABSL_FLAG(double, rate, 0, "transactions per second over all sessions; 0: unpaced");
ABSL_FLAG(int64_t, alter_add_at, -1, "the transaction that adds columns; -1: none");
ABSL_FLAG(int64_t, alter_drop_at, -1, "the transaction that drops two of them; -1: none");
ABSL_FLAG(int64_t, truncate_at, -1, "the transaction that truncates both tables; -1: none");
ABSL_FLAG(std::string, hold_alter_drop, "",
          "the DROP waits until this file exists (at most 10 min); empty: no wait");

namespace tributary::orderservice {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxAttempts = 200;
constexpr std::array<std::string_view, 8> kProducts = {
    "Gizmo",  "Gizmo XL",      "Widget",        "Sprocket", "Flux capacitor",
    "Doohickey", "Bolt 5\" (M8)", "Schraube \xC3\x98" "8 \\ verzinkt"};

// The kinds of operation; a transaction runs one, or 2-3 (kMulti).
enum class Op {
  kPlaceOrder,
  kCancelLine,
  kUpdateOrderStatus,
  kUpdateQuantity,
  kMoveLine,
  kRekeyLine,
  kUpdateDetails,
  kUpdateNotes,
  kDeleteOrder,
  kMulti,
  kBulk,
  kAddLine,  // what a line operation does on an order without a fitting line
  // Table-wide, each at the transaction its flag names:
  kAlterAdd,
  kAlterDrop,
  kTruncate,
};
constexpr int kOpCount = 15;
constexpr std::array<std::string_view, kOpCount> kOpNames = {
    "place_order",    "cancel_line",  "update_order_status", "update_quantity",
    "move_line",      "rekey_line",   "update_details",      "update_notes",
    "delete_order",   "multi",        "bulk",                "add_line",
    "alter_add",      "alter_drop",   "truncate"};
// Statements run one by one (libpq's extended protocol takes one each).
using Statements = std::array<const char*, 2>;
constexpr Statements kAlterAddSql = {
    "ALTER TABLE inventory.orderline ADD COLUMN IF NOT EXISTS discount numeric(10,2) NOT NULL "
    "DEFAULT 0.00, ADD COLUMN IF NOT EXISTS gift_note text DEFAULT 'none', ADD COLUMN IF NOT "
    "EXISTS promised_on date DEFAULT '2024-01-01'",
    "ALTER TABLE inventory.purchaseorder ADD COLUMN IF NOT EXISTS channel text NOT NULL "
    "DEFAULT 'web'"};
constexpr Statements kAlterDropSql = {
    "ALTER TABLE inventory.orderline DROP COLUMN IF EXISTS gift_note",
    "ALTER TABLE inventory.purchaseorder DROP COLUMN IF EXISTS channel"};
constexpr Statements kDropAddedSql = {
    "ALTER TABLE inventory.orderline DROP COLUMN IF EXISTS discount, DROP COLUMN IF EXISTS "
    "gift_note, DROP COLUMN IF EXISTS promised_on",
    "ALTER TABLE inventory.purchaseorder DROP COLUMN IF EXISTS channel"};
// Weights of kPlaceOrder .. kMulti (cdc-gen's OperationMix, plus the newer
// operations).
constexpr std::array<double, 10> kOpWeights = {30, 12, 12, 12, 8, 6, 8, 4, 6, 15};
// A multi-operation transaction picks among kPlaceOrder .. kUpdateNotes.
constexpr int kMultiOps = 8;
constexpr std::array<std::string_view, 4> kPriorities = {"LOW", "NORMAL", "HIGH", "URGENT"};
constexpr std::array<std::string_view, 7> kTags = {
    "gift wrap", "fragile", "b2b", "express", "say \"hi\"", "a,b", "\xC3\xBC" "bergr\xC3\xB6\xC3\x9F" "e"};

std::string_view OpName(Op op) { return kOpNames[static_cast<int>(op)]; }

// --- libpq ---

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// SQLSTATEs worth a retry of the whole transaction.
bool Retryable(std::string_view sqlstate) {
  return sqlstate == "40001" || sqlstate == "40P01";
}

// One libpq connection. Errors are Aborted (retry the transaction: deadlock
// or serialization failure, SQLSTATE in the message) or Internal.
// Thread-safety: one thread at a time.
class Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open() {
    ConnPtr conn(PQconnectdb(""));  // PGHOST, PGPORT, PGUSER, ... from the environment
    if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to PostgreSQL (PGHOST/PGPORT/PGUSER/PGDATABASE; "
          "`export $(scripts/postgres env)`): ",
          conn ? PQerrorMessage(conn.get()) : "out of memory"));
    }
    auto connection = std::unique_ptr<Connection>(new Connection(std::move(conn)));
    // The logged timestamps in UTC (+00:00), whatever the server's default.
    TRIBUTARY_RETURN_IF_ERROR(connection->Exec("SET TimeZone = 'UTC'").status());
    return connection;
  }

  // Runs `sql` with text parameters $1, $2, ...
  absl::StatusOr<ResultPtr> Exec(const char* sql,
                                 const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const std::string& p : params) values.push_back(p.c_str());
    ResultPtr result(PQexecParams(conn_.get(), sql, static_cast<int>(values.size()),
                                  nullptr, values.data(), nullptr, nullptr, 0));
    const ExecStatusType status =
        result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
    const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string sqlstate = state != nullptr ? state : "";
    std::string message = absl::StrCat("SQLSTATE ", sqlstate, ": ",
                                       PQerrorMessage(conn_.get()), " in: ", sql);
    if (Retryable(sqlstate)) return absl::AbortedError(message);
    return absl::InternalError(message);
  }

  absl::Status ExecAll(const Statements& statements) {
    for (const char* sql : statements) TRIBUTARY_RETURN_IF_ERROR(Exec(sql).status());
    return absl::OkStatus();
  }

  // The single value of a one-row, one-column result.
  absl::StatusOr<std::string> Value(const char* sql, const std::vector<std::string>& params = {}) {
    TRIBUTARY_ASSIGN_OR_RETURN(ResultPtr result, Exec(sql, params));
    if (PQntuples(result.get()) != 1) {
      return absl::InternalError(absl::StrCat(PQntuples(result.get()), " rows from: ", sql));
    }
    return std::string(PQgetvalue(result.get(), 0, 0));
  }

 private:
  explicit Connection(ConnPtr conn) : conn_(std::move(conn)) {}
  ConnPtr conn_;
};

// PostgreSQL array literal of text values: {"a","b \"c\""}.
std::string TextArray(const std::vector<std::string_view>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string IntArray(const std::vector<int64_t>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

// A JSON string literal (the payload of outbox rows).
std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The state of each order in $1 (int[]) that exists: (id, the order's row as
// JSON, its lines' rows as a JSON array by line id; not json_agg, whose
// output has line breaks). OrderJson joins them.
constexpr char kStateSql[] = R"sql(
SELECT o.id, to_json(o)::text, '[' || COALESCE((
    SELECT string_agg(to_json(l)::text, ',' ORDER BY l.id)
    FROM inventory.orderline l WHERE l.order_id = o.id), '') || ']'
FROM inventory.purchaseorder o WHERE o.id = ANY($1::int[]))sql";

// The order's row JSON ({...}) with "lines":<lines> added as its last field.
std::string OrderJson(std::string_view row, std::string_view lines) {
  const size_t close = row.rfind('}');
  return absl::StrCat(Sv(row.substr(0, close)), ",\"lines\":", Sv(lines), "}");
}

// --- the shared state of the sessions ---

// Counters of one session, summed at the end.
struct Stats {
  std::array<int64_t, kOpCount> ops{};
  int64_t committed = 0;
  int64_t retries_deadlock = 0;  // deadlocks and serialization failures
  int64_t retries_vanished = 0;  // a picked order was deleted meanwhile
  int64_t orders_created = 0;
  int64_t orders_deleted = 0;
  int64_t lines_inserted = 0;
  int64_t outbox_rows = 0;

  void Add(const Stats& o) {
    for (int i = 0; i < kOpCount; ++i) ops[i] += o.ops[i];
    committed += o.committed;
    retries_deadlock += o.retries_deadlock;
    retries_vanished += o.retries_vanished;
    orders_created += o.orders_created;
    orders_deleted += o.orders_deleted;
    lines_inserted += o.lines_inserted;
    outbox_rows += o.outbox_rows;
  }
};

struct Options {
  int sessions = 4;
  int64_t transactions = 0;
  uint64_t seed = 1;
  int64_t bulk_every = 0;
  int bulk_lines = 2000;
  bool outbox = false;
  double rate = 0;
  int64_t alter_add_at = -1;
  int64_t alter_drop_at = -1;
  int64_t truncate_at = -1;
  std::string hold_alter_drop;  // a file the DROP waits for; empty: none
  int64_t first_order = 1;  // every order of this run has an id at least this
};

// What the sessions share: the committed orders to pick from, the claim
// counter, the commit-order counter and the log. Thread-safe.
class Shared {
 public:
  Shared(Options options, std::FILE* log) : options_(options), log_(log) {}

  const Options& options() const { return options_; }

  // Claims the next transaction; false when all are claimed or one session
  // failed. Paces claims to --rate.
  bool Claim(int64_t& index) {
    if (failed_) return false;
    index = next_.fetch_add(1);
    if (index >= options_.transactions) return false;
    if (options_.rate > 0) {
      std::this_thread::sleep_until(
          start_ + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(index / options_.rate)));
    }
    return true;
  }
  void Fail() { failed_ = true; }

  int64_t NextSeq() { return seq_.fetch_add(1); }

  // Up to `count` distinct committed orders, chosen at random; half of the
  // picks among the newest kHotOrders, so that sessions contend for orders.
  std::vector<int64_t> Pick(std::mt19937_64& rng, size_t count) {
    static constexpr size_t kHotOrders = 16;
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int64_t> picked;
    for (size_t attempt = 0; picked.size() < count && attempt < 4 * count; ++attempt) {
      if (orders_.empty()) break;
      const size_t n = orders_.size();
      const size_t at = rng() % 2 == 0 ? n - 1 - rng() % std::min(n, kHotOrders) : rng() % n;
      const int64_t id = orders_[at];
      if (std::find(picked.begin(), picked.end(), id) == picked.end()) picked.push_back(id);
    }
    return picked;
  }

  // After a COMMIT: the pool learns the created and deleted orders, and the
  // log gets the transaction's line.
  void Committed(const std::vector<int64_t>& created, const std::vector<int64_t>& deleted,
                 const std::string& log_line) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int64_t id : created) {
        position_[id] = orders_.size();
        orders_.push_back(id);
      }
      for (int64_t id : deleted) {
        auto it = position_.find(id);
        if (it == position_.end()) continue;
        const size_t at = it->second;
        position_[orders_.back()] = at;
        orders_[at] = orders_.back();
        orders_.pop_back();
        position_.erase(id);
      }
    }
    std::lock_guard<std::mutex> lock(log_mutex_);
    std::fputs(log_line.c_str(), log_);
    std::fputc('\n', log_);
    std::fflush(log_);
  }

 private:
  const Options options_;
  const Clock::time_point start_ = Clock::now();
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> seq_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::vector<int64_t> orders_;
  std::unordered_map<int64_t, size_t> position_;
  std::mutex log_mutex_;
  std::FILE* log_;
};

// --- one session ---

// One planned operation: its kind and the existing orders it works on.
struct PlannedOp {
  Op op;
  std::vector<int64_t> orders;
};

// What a transaction did, collected while it runs.
struct TxEffects {
  std::set<int64_t> touched;
  std::vector<int64_t> created;
  std::vector<int64_t> deleted;
  std::vector<Op> ops;
  int64_t lines_inserted = 0;
  int64_t outbox_rows = 0;
  std::map<int64_t, std::string> status;  // current status of locked orders
};

// Marks a transaction to plan again: a picked order no longer exists.
absl::Status Vanished() { return absl::NotFoundError("a picked order was deleted meanwhile"); }

class Session {
 public:
  Session(int index, Shared& shared, std::unique_ptr<Connection> conn)
      : index_(index),
        shared_(shared),
        conn_(std::move(conn)),
        rng_(shared.options().seed * 1000003 + static_cast<uint64_t>(index)) {}

  // Runs claimed transactions until none is left.
  absl::Status Run() {
    int64_t index = 0;
    while (shared_.Claim(index)) {
      const Options& options = shared_.options();
      const bool bulk = options.bulk_every > 0 && (index + 1) % options.bulk_every == 0;
      std::optional<Op> table_wide;
      if (index == options.alter_add_at) table_wide = Op::kAlterAdd;
      if (index == options.alter_drop_at) table_wide = Op::kAlterDrop;
      if (index == options.truncate_at) table_wide = Op::kTruncate;
      if (table_wide == Op::kAlterDrop) TRIBUTARY_RETURN_IF_ERROR(HoldAlterDrop());
      TRIBUTARY_RETURN_IF_ERROR(RunOne(bulk, table_wide));
    }
    return absl::OkStatus();
  }

  const Stats& stats() const { return stats_; }

 private:
  // Waits until the --hold-alter-drop file exists (see the header).
  absl::Status HoldAlterDrop() {
    const std::string& file = shared_.options().hold_alter_drop;
    if (file.empty()) return absl::OkStatus();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    std::error_code error;
    while (!std::filesystem::exists(file, error)) {
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("--hold-alter-drop: ", file, " did not appear in 10 minutes"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return absl::OkStatus();
  }

  int64_t Uniform(int64_t n) { return static_cast<int64_t>(rng_() % static_cast<uint64_t>(n)); }

  // Plans, runs and commits one transaction, retrying on deadlocks,
  // serialization failures and vanished orders.
  absl::Status RunOne(bool bulk, std::optional<Op> table_wide) {
    for (int attempt = 1;; ++attempt) {
      std::vector<PlannedOp> plan =
          table_wide ? std::vector<PlannedOp>{{*table_wide, {}}} : Plan(bulk);
      absl::Status status = Attempt(plan);
      if (status.ok()) return status;
      (void)conn_->Exec("ROLLBACK");  // the connection is usable again; errors show next time
      if (absl::IsAborted(status)) {
        ++stats_.retries_deadlock;
      } else if (absl::IsNotFound(status)) {
        ++stats_.retries_vanished;
      } else {
        return status;
      }
      if (attempt == kMaxAttempts) {
        return absl::InternalError(absl::StrCat("gave up after ", attempt,
                                                " attempts; last: ", status.ToString()));
      }
    }
  }

  // A single operation with its orders; a place_order when the pool has too
  // few orders for it.
  PlannedOp PlanSingle(Op op) {
    size_t need = 0;
    switch (op) {
      case Op::kPlaceOrder:
        return {op, {}};
      case Op::kMoveLine:
        need = 2;
        break;
      case Op::kBulk:
        need = static_cast<size_t>(1 + Uniform(3));
        break;
      default:
        need = 1;
    }
    std::vector<int64_t> orders = shared_.Pick(rng_, need);
    if (orders.empty() || (op == Op::kMoveLine && orders.size() < 2)) {
      return {Op::kPlaceOrder, {}};
    }
    return {op, std::move(orders)};
  }

  std::vector<PlannedOp> Plan(bool bulk) {
    if (bulk) return {PlanSingle(Op::kBulk)};
    std::discrete_distribution<int> pick(kOpWeights.begin(), kOpWeights.end());
    const Op op = static_cast<Op>(pick(rng_));
    if (op != Op::kMulti) return {PlanSingle(op)};
    // 2-3 operations in one transaction; no delete among them, so no
    // operation works on an order another one deleted.
    static_assert(static_cast<int>(Op::kDeleteOrder) == kMultiOps);
    std::discrete_distribution<int> single(kOpWeights.begin(), kOpWeights.begin() + kMultiOps);
    std::vector<PlannedOp> plan;
    const int64_t count = 2 + Uniform(2);
    for (int64_t i = 0; i < count; ++i) plan.push_back(PlanSingle(static_cast<Op>(single(rng_))));
    return plan;
  }

  absl::Status Attempt(const std::vector<PlannedOp>& plan) {
    TRIBUTARY_RETURN_IF_ERROR(conn_->Exec("BEGIN ISOLATION LEVEL READ COMMITTED").status());
    TRIBUTARY_ASSIGN_OR_RETURN(const std::string txid, conn_->Value("SELECT txid_current()"));
    TxEffects fx;
    // Lock every existing order the plan works on, in id order.
    std::set<int64_t> wanted;
    for (const PlannedOp& p : plan) wanted.insert(p.orders.begin(), p.orders.end());
    if (!wanted.empty()) {
      TRIBUTARY_ASSIGN_OR_RETURN(
          ResultPtr locked,
          conn_->Exec("SELECT id, status FROM inventory.purchaseorder WHERE id = ANY($1::int[]) "
                      "ORDER BY id FOR UPDATE",
                      {IntArray({wanted.begin(), wanted.end()})}));
      if (static_cast<size_t>(PQntuples(locked.get())) != wanted.size()) return Vanished();
      for (int r = 0; r < PQntuples(locked.get()); ++r) {
        fx.status[std::stoll(PQgetvalue(locked.get(), r, 0))] = PQgetvalue(locked.get(), r, 1);
      }
    }
    for (const PlannedOp& p : plan) TRIBUTARY_RETURN_IF_ERROR(Execute(p, fx));

    // The touched orders' states as of this commit.
    const std::vector<int64_t> touched(fx.touched.begin(), fx.touched.end());
    std::map<int64_t, std::string> states;
    if (!touched.empty()) {
      TRIBUTARY_ASSIGN_OR_RETURN(ResultPtr result, conn_->Exec(kStateSql, {IntArray(touched)}));
      for (int r = 0; r < PQntuples(result.get()); ++r) {
        states[std::stoll(PQgetvalue(result.get(), r, 0))] =
            OrderJson(PQgetvalue(result.get(), r, 1), PQgetvalue(result.get(), r, 2));
      }
    }
    const int64_t seq = shared_.NextSeq();
    TRIBUTARY_RETURN_IF_ERROR(conn_->Exec("COMMIT").status());

    std::vector<std::string> op_names, state_texts;
    for (Op op : fx.ops) op_names.push_back(absl::StrCat("\"", Sv(OpName(op)), "\""));
    for (int64_t id : touched) {
      auto it = states.find(id);
      state_texts.push_back(it == states.end() ? "null" : it->second);
    }
    std::string line = absl::StrCat(
        "{\"txid\":", txid, ",\"seq\":", seq, ",\"session\":", index_, ",\"ops\":[",
        absl::StrJoin(op_names, ","), "],\"outbox\":", fx.outbox_rows, ",\"orders\":[",
        absl::StrJoin(touched, ","), "],\"states\":[", absl::StrJoin(state_texts, ","), "]}");
    shared_.Committed(fx.created, fx.deleted, line);

    ++stats_.committed;
    for (Op op : fx.ops) ++stats_.ops[static_cast<int>(op)];
    if (plan.size() > 1) ++stats_.ops[static_cast<int>(Op::kMulti)];
    stats_.orders_created += static_cast<int64_t>(fx.created.size());
    stats_.orders_deleted += static_cast<int64_t>(fx.deleted.size());
    stats_.lines_inserted += fx.lines_inserted;
    stats_.outbox_rows += fx.outbox_rows;
    return absl::OkStatus();
  }

  absl::Status Execute(const PlannedOp& p, TxEffects& fx) {
    switch (p.op) {
      case Op::kPlaceOrder:
        return PlaceOrder(fx);
      case Op::kCancelLine:
        return ChangeOneLine(fx, p.orders[0], Op::kCancelLine,
                             "UPDATE inventory.orderline SET status = 'CANCELLED' WHERE id = ("
                             "SELECT id FROM inventory.orderline WHERE order_id = $1 AND "
                             "status <> 'CANCELLED' ORDER BY random() LIMIT 1) RETURNING id",
                             {absl::StrCat(p.orders[0])});
      case Op::kUpdateOrderStatus:
        return UpdateOrderStatus(fx, p.orders[0]);
      case Op::kUpdateQuantity:
        return ChangeOneLine(fx, p.orders[0], Op::kUpdateQuantity,
                             "UPDATE inventory.orderline SET quantity = $2 WHERE id = ("
                             "SELECT id FROM inventory.orderline WHERE order_id = $1 "
                             "ORDER BY random() LIMIT 1) RETURNING id",
                             {absl::StrCat(p.orders[0]), absl::StrCat(1 + Uniform(20))});
      case Op::kMoveLine:
        return MoveLine(fx, p.orders[0], p.orders[1]);
      case Op::kRekeyLine:
        return RekeyLine(fx, p.orders[0]);
      case Op::kUpdateDetails:
        return UpdateDetails(fx, p.orders[0]);
      case Op::kUpdateNotes:
        return UpdateNotes(fx, p.orders[0]);
      case Op::kDeleteOrder:
        return DeleteOrder(fx, p.orders[0]);
      case Op::kBulk:
        return Bulk(fx, p.orders);
      case Op::kAlterAdd:
      case Op::kAlterDrop: {
        // Both tables are altered: every order's state changes shape. The
        // ALTERs hold both tables until COMMIT, so the states read then are
        // those of the commit.
        TRIBUTARY_RETURN_IF_ERROR(
            conn_->ExecAll(p.op == Op::kAlterAdd ? kAlterAddSql : kAlterDropSql));
        TRIBUTARY_ASSIGN_OR_RETURN(std::vector<int64_t> orders, OrdersOfThisRun());
        fx.touched.insert(orders.begin(), orders.end());
        fx.ops.push_back(p.op);
        return PlaceOrder(fx);
      }
      case Op::kTruncate:
        return Truncate(fx);
      case Op::kMulti:
      case Op::kAddLine:
        break;
    }
    return absl::InternalError("unplanned operation");
  }

  absl::Status Outbox(TxEffects& fx, int64_t order_id, std::string_view type,
                      std::string_view details) {
    if (!shared_.options().outbox) return absl::OkStatus();
    const std::string payload = absl::StrCat("{\"order_id\":", order_id, ",\"event\":",
                                             JsonString(type), ",", Sv(details), "}");
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("INSERT INTO inventory.outbox (id, aggregatetype, aggregateid, type, payload) "
                    "VALUES (gen_random_uuid(), 'order', $1, $2, $3::jsonb)",
                    {absl::StrCat(order_id), std::string(type), payload})
            .status());
    ++fx.outbox_rows;
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> InsertLine(TxEffects& fx, int64_t order_id) {
    const std::string_view product = kProducts[Uniform(kProducts.size())];
    TRIBUTARY_ASSIGN_OR_RETURN(
        const std::string id,
        conn_->Value("INSERT INTO inventory.orderline "
                     "(order_id, product, quantity, price, status, weight_kg) "
                     "VALUES ($1, $2, $3, $4, 'ENTERED', $5) RETURNING id",
                     {absl::StrCat(order_id), std::string(product), absl::StrCat(1 + Uniform(10)),
                      Decimal(99 + Uniform(99901), 2), Decimal(Uniform(100000), Uniform(4))}));
    ++fx.lines_inserted;
    fx.touched.insert(order_id);
    return std::stoll(id);
  }

  absl::Status PlaceOrder(TxEffects& fx) {
    // placed_at: some time in 2024, to the microsecond, the millisecond or
    // the second.
    int64_t micros = Uniform(int64_t{366} * 86400 * 1000000);
    if (const int64_t unit = std::array<int64_t, 4>{1, 1, 1000, 1000000}[Uniform(4)]; unit > 1) {
      micros -= micros % unit;
    }
    TRIBUTARY_ASSIGN_OR_RETURN(
        const std::string id_text,
        conn_->Value("INSERT INTO inventory.purchaseorder (customer_id, order_date, status, "
                     "shipping_cost, placed_at, attributes, tracking_id, priority, tags, notes) "
                     "VALUES ($1, DATE '2023-01-01' + $2::int, 'PLACED', $3, "
                     "TIMESTAMPTZ '2024-01-01 00:00:00+00' + $4::bigint * INTERVAL '1 microsecond', "
                     "NULLIF($5, '')::jsonb, $6::uuid, $7, $8::text[], NULLIF($9, '')) RETURNING id",
                     {absl::StrCat(1001 + Uniform(500)), absl::StrCat(Uniform(730)),
                      Decimal(Uniform(5000), 2), absl::StrCat(micros), Attributes(), Uuid(),
                      std::string(kPriorities[Uniform(kPriorities.size())]), Tags(), Notes()}));
    const int64_t id = std::stoll(id_text);
    fx.touched.insert(id);
    fx.created.push_back(id);
    fx.status[id] = "PLACED";
    fx.ops.push_back(Op::kPlaceOrder);
    const int64_t lines = 1 + Uniform(5);
    for (int64_t i = 0; i < lines; ++i) TRIBUTARY_RETURN_IF_ERROR(InsertLine(fx, id).status());
    return Outbox(fx, id, "OrderCreated", absl::StrCat("\"lines\":", lines));
  }

  // The orders of this run that exist (ids from Options::first_order on).
  absl::StatusOr<std::vector<int64_t>> OrdersOfThisRun() {
    TRIBUTARY_ASSIGN_OR_RETURN(
        ResultPtr existing,
        conn_->Exec("SELECT id FROM inventory.purchaseorder WHERE id >= $1",
                    {absl::StrCat(shared_.options().first_order)}));
    std::vector<int64_t> orders;
    for (int r = 0; r < PQntuples(existing.get()); ++r) {
      orders.push_back(std::stoll(PQgetvalue(existing.get(), r, 0)));
    }
    return orders;
  }

  // Once both tables are locked, nobody commits changes to them: the orders
  // read then are exactly those the TRUNCATE deletes.
  absl::Status Truncate(TxEffects& fx) {
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("LOCK TABLE inventory.purchaseorder, inventory.orderline IN ACCESS "
                    "EXCLUSIVE MODE")
            .status());
    TRIBUTARY_ASSIGN_OR_RETURN(std::vector<int64_t> orders, OrdersOfThisRun());
    fx.touched.insert(orders.begin(), orders.end());
    fx.deleted.insert(fx.deleted.end(), orders.begin(), orders.end());
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("TRUNCATE inventory.purchaseorder, inventory.orderline").status());
    fx.ops.push_back(Op::kTruncate);
    return PlaceOrder(fx);
  }

  // Runs `sql`, which changes at most one line of `order_id` (RETURNING id);
  // when the order has no fitting line, adds one instead.
  absl::Status ChangeOneLine(TxEffects& fx, int64_t order_id, Op op, const char* sql,
                             const std::vector<std::string>& params) {
    TRIBUTARY_ASSIGN_OR_RETURN(ResultPtr result, conn_->Exec(sql, params));
    if (PQntuples(result.get()) == 0) return AddLine(fx, order_id);
    fx.touched.insert(order_id);
    fx.ops.push_back(op);
    const std::string line_id = PQgetvalue(result.get(), 0, 0);
    return Outbox(fx, order_id,
                  op == Op::kCancelLine ? "OrderLineCancelled" : "OrderLineQuantityChanged",
                  absl::StrCat("\"line_id\":", line_id));
  }

  absl::Status AddLine(TxEffects& fx, int64_t order_id) {
    TRIBUTARY_ASSIGN_OR_RETURN(const int64_t line_id, InsertLine(fx, order_id));
    fx.ops.push_back(Op::kAddLine);
    return Outbox(fx, order_id, "OrderLineAdded", absl::StrCat("\"line_id\":", line_id));
  }

  absl::Status UpdateOrderStatus(TxEffects& fx, int64_t order_id) {
    static constexpr std::array<std::string_view, 3> kStatuses = {"PLACED", "SHIPPED",
                                                                  "CANCELLED"};
    std::string& current = fx.status[order_id];
    std::string_view status = current;
    while (status == current) status = kStatuses[Uniform(3)];
    current = std::string(status);
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("UPDATE inventory.purchaseorder SET status = $2 WHERE id = $1",
                    {absl::StrCat(order_id), current})
            .status());
    // Shipping or cancelling an order does the same to its open lines.
    if (status != "PLACED") {
      TRIBUTARY_RETURN_IF_ERROR(
          conn_->Exec("UPDATE inventory.orderline SET status = $2 "
                      "WHERE order_id = $1 AND status = 'ENTERED'",
                      {absl::StrCat(order_id), current})
              .status());
    }
    fx.touched.insert(order_id);
    fx.ops.push_back(Op::kUpdateOrderStatus);
    return Outbox(fx, order_id, "OrderStatusChanged",
                  absl::StrCat("\"status\":", JsonString(current)));
  }

  absl::Status MoveLine(TxEffects& fx, int64_t from, int64_t to) {
    TRIBUTARY_ASSIGN_OR_RETURN(
        ResultPtr result,
        conn_->Exec("UPDATE inventory.orderline SET order_id = $2 WHERE id = ("
                    "SELECT id FROM inventory.orderline WHERE order_id = $1 "
                    "ORDER BY random() LIMIT 1) RETURNING id",
                    {absl::StrCat(from), absl::StrCat(to)}));
    if (PQntuples(result.get()) == 0) return AddLine(fx, from);
    fx.touched.insert(from);
    fx.touched.insert(to);
    fx.ops.push_back(Op::kMoveLine);
    return Outbox(fx, to, "OrderLineMoved",
                  absl::StrCat("\"line_id\":", PQgetvalue(result.get(), 0, 0),
                               ",\"from_order_id\":", from));
  }

  // Gives one line of the order a new primary key.
  absl::Status RekeyLine(TxEffects& fx, int64_t order_id) {
    TRIBUTARY_ASSIGN_OR_RETURN(
        ResultPtr result,
        conn_->Exec("UPDATE inventory.orderline SET id = nextval('inventory.orderline_id_seq') "
                    "WHERE id = (SELECT id FROM inventory.orderline WHERE order_id = $1 "
                    "ORDER BY random() LIMIT 1) RETURNING id",
                    {absl::StrCat(order_id)}));
    if (PQntuples(result.get()) == 0) return AddLine(fx, order_id);
    fx.touched.insert(order_id);
    fx.ops.push_back(Op::kRekeyLine);
    return Outbox(fx, order_id, "OrderLineRekeyed",
                  absl::StrCat("\"line_id\":", PQgetvalue(result.get(), 0, 0)));
  }

  // Changes every column of the order but its keys, status and notes.
  absl::Status UpdateDetails(TxEffects& fx, int64_t order_id) {
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("UPDATE inventory.purchaseorder SET shipping_cost = $2, "
                    "attributes = NULLIF($3, '')::jsonb, tags = $4::text[], priority = $5 "
                    "WHERE id = $1",
                    {absl::StrCat(order_id), Decimal(Uniform(5000), 2), Attributes(), Tags(),
                     std::string(kPriorities[Uniform(kPriorities.size())])})
            .status());
    fx.touched.insert(order_id);
    fx.ops.push_back(Op::kUpdateDetails);
    return Outbox(fx, order_id, "OrderDetailsChanged", "\"details\":true");
  }

  absl::Status UpdateNotes(TxEffects& fx, int64_t order_id) {
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("UPDATE inventory.purchaseorder SET notes = NULLIF($2, '') WHERE id = $1",
                    {absl::StrCat(order_id), Notes()})
            .status());
    fx.touched.insert(order_id);
    fx.ops.push_back(Op::kUpdateNotes);
    return Outbox(fx, order_id, "OrderNotesChanged", "\"notes\":true");
  }

  absl::Status DeleteOrder(TxEffects& fx, int64_t order_id) {
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("DELETE FROM inventory.orderline WHERE order_id = $1",
                    {absl::StrCat(order_id)})
            .status());
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec("DELETE FROM inventory.purchaseorder WHERE id = $1", {absl::StrCat(order_id)})
            .status());
    fx.touched.insert(order_id);
    fx.deleted.push_back(order_id);
    fx.ops.push_back(Op::kDeleteOrder);
    return Outbox(fx, order_id, "OrderDeleted", "\"deleted\":true");
  }

  // bulk_lines line inserts in one statement, spread over `orders`.
  absl::Status Bulk(TxEffects& fx, const std::vector<int64_t>& orders) {
    std::vector<std::string_view> products(kProducts.begin(), kProducts.end());
    const int lines = shared_.options().bulk_lines;
    TRIBUTARY_RETURN_IF_ERROR(
        conn_->Exec(
                 "INSERT INTO inventory.orderline "
                 "(order_id, product, quantity, price, status, weight_kg) "
                 "SELECT ($1::int[])[1 + g % cardinality($1::int[])], "
                 "($2::text[])[1 + (g * 7 + $4) % cardinality($2::text[])], "
                 "1 + (g + $4) % 10, (99 + (g * 7919 + $4) % 99901) / 100.0, 'ENTERED', "
                 "round(((g * 31 + $4) % 99991) / 7.0, (g + $4) % 4) "
                 "FROM generate_series(0, $3 - 1) AS g",
                 {IntArray(orders), TextArray(products), absl::StrCat(lines),
                  absl::StrCat(Uniform(1000))})
            .status());
    fx.lines_inserted += lines;
    fx.touched.insert(orders.begin(), orders.end());
    fx.ops.push_back(Op::kBulk);
    return Outbox(fx, orders[0], "OrderLinesBulkAdded",
                  absl::StrCat("\"lines\":", lines, ",\"orders\":", orders.size()));
  }

  // --- column values ---

  // `unscaled` / 10^scale as PostgreSQL's NUMERIC text: "1250", "125.0", "1.250".
  static std::string Decimal(int64_t unscaled, int64_t scale) {
    std::string digits = absl::StrCat(unscaled);
    if (scale == 0) return digits;
    if (static_cast<int64_t>(digits.size()) <= scale) {
      digits.insert(0, static_cast<size_t>(scale + 1) - digits.size(), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale), ".");
    return digits;
  }

  // A jsonb object, or "" (NULL) a quarter of the time.
  std::string Attributes() {
    if (Uniform(4) == 0) return "";
    static constexpr std::array<std::string_view, 3> kChannels = {"web", "phone", "store"};
    return absl::StrCat("{\"channel\":\"", Sv(kChannels[Uniform(3)]),
                        "\",\"gift\":", Uniform(2) == 0 ? "true" : "false",
                        ",\"rating\":", Decimal(Uniform(501), 2),
                        ",\"dims\":[", Uniform(100), ",", Uniform(100), ",", Decimal(Uniform(1000), 1),
                        "],\"note\":\"say \\\"hi\\\" \xC3\xA0 ", Uniform(1000),
                        "\",\"nested\":{\"none\":null,\"level\":", Uniform(5), "}}");
  }

  std::string Uuid() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 32; ++i) {
      if (i == 8 || i == 12 || i == 16 || i == 20) out += '-';
      out += i == 12 ? '4' : kHex[Uniform(16)];
    }
    return out;
  }

  // A text[] literal of 0-3 tags.
  std::string Tags() {
    std::vector<std::string_view> tags;
    for (int64_t n = Uniform(4); n > 0; --n) tags.push_back(kTags[Uniform(kTags.size())]);
    return TextArray(tags);
  }

  // "" (NULL), a short note, or 8-12 kB of text (out of line: TOAST).
  std::string Notes() {
    switch (Uniform(3)) {
      case 0:
        return "";
      case 1:
        return absl::StrCat("call before delivery \xE2\x80\x94 gate ", Uniform(100));
      default:
        break;
    }
    static constexpr char kText[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-'\"\\/\n\t";
    const int64_t size = 8 * 1024 + Uniform(4 * 1024);
    std::string out;
    out.reserve(static_cast<size_t>(size));
    while (static_cast<int64_t>(out.size()) < size) out += kText[Uniform(sizeof(kText) - 1)];
    return out;
  }

  const int index_;
  Shared& shared_;
  std::unique_ptr<Connection> conn_;
  std::mt19937_64 rng_;
  Stats stats_;
};

int Main() {
  Options options;
  options.sessions = absl::GetFlag(FLAGS_sessions);
  options.transactions = absl::GetFlag(FLAGS_transactions);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.bulk_every = absl::GetFlag(FLAGS_bulk_every);
  options.bulk_lines = absl::GetFlag(FLAGS_bulk_lines);
  options.outbox = absl::GetFlag(FLAGS_outbox);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.alter_add_at = absl::GetFlag(FLAGS_alter_add_at);
  options.alter_drop_at = absl::GetFlag(FLAGS_alter_drop_at);
  options.truncate_at = absl::GetFlag(FLAGS_truncate_at);
  options.hold_alter_drop = absl::GetFlag(FLAGS_hold_alter_drop);
  const std::string log_path = absl::GetFlag(FLAGS_log);
  if (options.sessions < 1 || options.transactions < 0 || options.bulk_every < 0 ||
      options.bulk_lines < 1 || options.rate < 0 || log_path.empty()) {
    std::fprintf(stderr,
                 "order-service: need --log FILE, --sessions >= 1, --transactions >= 0, "
                 "--bulk-every >= 0, --bulk-lines >= 1, --rate >= 0\n");
    return 1;
  }
  std::FILE* log = std::fopen(log_path.c_str(), "w");
  if (log == nullptr) {
    std::perror(log_path.c_str());
    return 1;
  }

  // Connect every session before the first transaction.
  std::vector<std::unique_ptr<Connection>> connections;
  for (int i = 0; i < options.sessions; ++i) {
    absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open();
    if (!conn.ok()) {
      std::fprintf(stderr, "order-service: %s\n", conn.status().ToString().c_str());
      std::fclose(log);
      return 2;
    }
    connections.push_back(*std::move(conn));
  }
  absl::Status prepared = [&]() -> absl::Status {
    const bool table_wide = options.alter_add_at >= 0 || options.alter_drop_at >= 0 ||
                            options.truncate_at >= 0;
    if (table_wide) TRIBUTARY_RETURN_IF_ERROR(connections[0]->ExecAll(kDropAddedSql));
    TRIBUTARY_ASSIGN_OR_RETURN(
        const std::string first,
        connections[0]->Value("SELECT (COALESCE(MAX(id), 0) + 1)::text FROM "
                              "inventory.purchaseorder"));
    options.first_order = std::stoll(first);
    return absl::OkStatus();
  }();
  if (!prepared.ok()) {
    std::fprintf(stderr, "order-service: %s\n", prepared.ToString().c_str());
    std::fclose(log);
    return 2;
  }
  Shared shared(options, log);
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < options.sessions; ++i) {
    sessions.push_back(std::make_unique<Session>(i, shared, std::move(connections[i])));
  }

  const auto start = Clock::now();
  std::vector<absl::Status> results(sessions.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < sessions.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] = sessions[i]->Run();
      if (!results[i].ok()) shared.Fail();
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::fclose(log);

  Stats total;
  for (const auto& s : sessions) total.Add(s->stats());
  int failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    ++failed;
    std::fprintf(stderr, "order-service: session %zu failed: %s\n", i,
                 results[i].ToString().c_str());
  }
  std::vector<std::string> ops;
  for (int i = 0; i < kOpCount; ++i) {
    if (total.ops[i] > 0) ops.push_back(absl::StrCat(Sv(kOpNames[i]), " ", total.ops[i]));
  }
  std::printf(
      "order-service: %lld transactions committed by %d sessions in %.1f s (%.0f/s); "
      "operations: %s; retries: %lld deadlock/serialization, %lld vanished order; "
      "orders created %lld, deleted %lld; lines inserted %lld; outbox rows %lld; log %s\n",
      static_cast<long long>(total.committed), options.sessions, seconds,
      total.committed / std::max(seconds, 1e-3), absl::StrJoin(ops, ", ").c_str(),
      static_cast<long long>(total.retries_deadlock),
      static_cast<long long>(total.retries_vanished),
      static_cast<long long>(total.orders_created), static_cast<long long>(total.orders_deleted),
      static_cast<long long>(total.lines_inserted), static_cast<long long>(total.outbox_rows),
      log_path.c_str());
  return failed == 0 ? 0 : 2;
}

}  // namespace
}  // namespace tributary::orderservice

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "order-service --sessions 4 --transactions N --seed S --log FILE "
      "[--bulk-every K --bulk-lines L] [--outbox] [--rate R] [--alter-add-at N "
      "--alter-drop-at N --truncate-at N [--hold-alter-drop FILE]]: concurrent order-service "
      "transactions against PostgreSQL (PG* environment variables)");
  // Abseil's flag names use '_'; accept the documented "--bulk-every" too.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> args_c;
  for (std::string& arg : args) {
    if (arg.rfind("--", 0) == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      std::replace(arg.begin() + 2, arg.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
    }
    args_c.push_back(arg.data());
  }
  absl::ParseCommandLine(static_cast<int>(args_c.size()), args_c.data());
  return tributary::orderservice::Main();
}
