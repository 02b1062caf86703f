// End-to-end tests on the real services (label `e2e`): PostgreSQL
// (scripts/postgres), the Kafka broker (scripts/kafka) and a Kafka Connect
// worker with Debezium (scripts/connect) must run; the tests FAIL, saying
// which one is missing, when they do not. They start nothing but their own
// processes: each registers its own Debezium connector (a unique topic
// prefix, replication slot and publication; no snapshot), runs
// order-aggregator and the order service's driver (apps/order-service:
// concurrent sessions, bulk inserts, outbox rows) as child processes, and
// hits Debezium mid-run: a restart through the REST API, a stop with its
// offsets set back (it then writes part of the run again, as after a crash
// before its offset commit) and a cut replication connection.
//
// AggregatesAreCommittedDatabaseStates waits until the output has caught up
// with the database and checks:
//   (a) every order's last version equals what PostgreSQL returns for it (one
//       query with json_agg over orders and lines), a deleted order's last
//       record is a tombstone;
//   (b) the versions of an order are exactly the states the driver logged
//       inside each committed transaction that touched it, in commit order:
//       version 1..n, source_tx.id the transaction's txid, source_tx.position
//       increasing;
//   (c) hence one version per committed transaction and order: no duplicate
//       despite Debezium's re-deliveries, no gap; and nothing dead-lettered.
// OutboxEventsOnceEachAndProcessedOnce checks the outbox route and
// shipment-service (see the test).
// Services: TRIBUTARY_BOOTSTRAP (127.0.0.1:19092); PG* variables (defaults
// 127.0.0.1, TRIBUTARY_POSTGRES_PORT or 15432, postgres/postgres, orderdb);
// TRIBUTARY_CONNECT_URL (http://127.0.0.1:TRIBUTARY_CONNECT_PORT or 18083).
// The connector is deleted and its slot dropped at the end; the temporary
// directory (configs, driver log, child logs) is kept, and its path printed,
// when the test fails.
#include <libpq-fe.h>
#include <netdb.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "state/absl_compat.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

#define ASSERT_STATUS_OK(expr)            \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
constexpr char kOrderService[] = ORDER_SERVICE_PATH;
constexpr char kShipmentService[] = SHIPMENT_SERVICE_PATH;
constexpr char kRepoRoot[] = REPO_ROOT;

// The run: >= 2,000 transactions from 4 sessions, two bulk inserts of 2,000
// lines, paced so that the connector restart falls in the middle.
constexpr int kSessions = 4;
constexpr int kTransactions = 2400;
constexpr int kBulkEvery = 1200;
constexpr int kBulkLines = 2000;
constexpr int kRate = 150;  // transactions per second
constexpr int kOutboxTransactions = 1000;  // the outbox test's run
constexpr int kTablePartitions = 3;
// Bounds on observable conditions; a healthy run needs a fraction of them.
constexpr auto kConnectorTimeout = 120s;
constexpr auto kDriverTimeout = 180s;
constexpr auto kCatchUpTimeout = 180s;
constexpr auto kExitTimeout = 60s;

// --- the environment ---

std::string EnvOr(const char* name, std::string fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

// libpq's variables, defaulted to scripts/postgres' cluster; children inherit
// them.
void DefaultPostgresEnvironment() {
  setenv("PGHOST", "127.0.0.1", 0);
  setenv("PGPORT", EnvOr("TRIBUTARY_POSTGRES_PORT", "15432").c_str(), 0);
  setenv("PGUSER", "postgres", 0);
  setenv("PGPASSWORD", "postgres", 0);
  setenv("PGDATABASE", "orderdb", 0);
}

std::string ConnectUrl() {
  return EnvOr("TRIBUTARY_CONNECT_URL",
               absl::StrCat("http://127.0.0.1:", EnvOr("TRIBUTARY_CONNECT_PORT", "18083")));
}

// --- PostgreSQL ---

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// One libpq connection (PG* variables). Single-threaded.
class Postgres {
 public:
  static absl::StatusOr<std::unique_ptr<Postgres>> Connect() {
    std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb("connect_timeout=5"));
    if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
      return absl::UnavailableError(absl::StrCat(
          "no PostgreSQL at ", EnvOr("PGHOST", "?"), ":", EnvOr("PGPORT", "?"),
          " (run scripts/postgres start, or set PGHOST/PGPORT/...): ",
          conn ? PQerrorMessage(conn.get()) : "out of memory"));
    }
    return std::unique_ptr<Postgres>(new Postgres(std::move(conn)));
  }

  absl::StatusOr<ResultPtr> Exec(const std::string& sql,
                                 const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    ResultPtr result(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()),
                                  nullptr, values.data(), nullptr, nullptr, 0));
    const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      return absl::InternalError(absl::StrCat(PQerrorMessage(conn_.get()), " in: ", sql));
    }
    return result;
  }

  // The first column of the first row; nullopt when there is no row or it
  // is NULL.
  absl::StatusOr<std::optional<std::string>> Value(const std::string& sql,
                                                   const std::vector<std::string>& params = {}) {
    absl::StatusOr<ResultPtr> result = Exec(sql, params);
    if (!result.ok()) return result.status();
    if (PQntuples(result->get()) == 0 || PQgetisnull(result->get(), 0, 0)) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(PQgetvalue(result->get(), 0, 0));
  }

 private:
  explicit Postgres(std::unique_ptr<PGconn, ConnDeleter> conn) : conn_(std::move(conn)) {}
  std::unique_ptr<PGconn, ConnDeleter> conn_;
};

// --- Kafka Connect's REST API (plain HTTP/1.0 over a socket) ---

struct HttpReply {
  int code = 0;
  std::string body;
};

absl::StatusOr<HttpReply> Http(std::string_view method, std::string_view path,
                               std::string_view body = "") {
  const std::string url = ConnectUrl();
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("TRIBUTARY_CONNECT_URL '", url,
                                                   "': expected http://host:port"));
  }
  std::string authority = url.substr(kScheme.size());
  authority = authority.substr(0, authority.find('/'));
  const size_t colon = authority.rfind(':');
  const std::string host = authority.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : authority.substr(colon + 1);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &addresses) != 0 || addresses == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", authority));
  }
  const int fd = socket(addresses->ai_family, addresses->ai_socktype, addresses->ai_protocol);
  timeval timeout{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  const int connected = connect(fd, addresses->ai_addr, addresses->ai_addrlen);
  freeaddrinfo(addresses);
  if (connected != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "no Kafka Connect worker at ", url,
        " (run scripts/connect start, or set TRIBUTARY_CONNECT_URL)"));
  }
  std::string request = absl::StrCat(Sv(method), " ", Sv(path), " HTTP/1.0\r\nHost: ", authority,
                                     "\r\nContent-Type: application/json\r\n"
                                     "Accept: application/json\r\nContent-Length: ",
                                     body.size(), "\r\nConnection: close\r\n\r\n", Sv(body));
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError(absl::StrCat("sending to ", url, " failed"));
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[16384];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  HttpReply reply;
  const size_t space = response.find(' ');
  const size_t head_end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/", 0) != 0 || space == std::string::npos ||
      head_end == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(response.data() + space + 1, 3), &reply.code)) {
    return absl::UnavailableError(
        absl::StrCat(Sv(method), " ", Sv(path), ": no HTTP reply from ", url, ": ",
                     response.substr(0, 200)));
  }
  reply.body = response.substr(head_end + 4);
  return reply;
}

// --- the orders, in one form for all sources ---

// One order line / order as the tests compare them: dates as days since the
// epoch, prices in cents.
struct LineState {
  int64_t id = 0, order_id = 0, quantity = 0, price_cents = 0;
  std::string product, status;
  bool operator==(const LineState&) const = default;
};
struct OrderState {
  int64_t id = 0, customer_id = 0, order_date = 0;
  std::string status;
  std::vector<LineState> lines;
  bool operator==(const OrderState&) const = default;
};

// The first difference between two states, for failure messages.
std::string Diff(const OrderState& want, const OrderState& got) {
  auto line_text = [](const LineState& l) {
    return absl::StrCat("{id ", l.id, " order ", l.order_id, " '", l.product, "' qty ",
                        l.quantity, " cents ", l.price_cents, " ", l.status, "}");
  };
  if (want.id != got.id || want.customer_id != got.customer_id ||
      want.order_date != got.order_date || want.status != got.status) {
    return absl::StrCat("order fields: want id ", want.id, " customer ", want.customer_id,
                        " date ", want.order_date, " ", want.status, "; got id ", got.id,
                        " customer ", got.customer_id, " date ", got.order_date, " ",
                        got.status);
  }
  for (size_t i = 0; i < std::max(want.lines.size(), got.lines.size()); ++i) {
    if (i < want.lines.size() && i < got.lines.size() && want.lines[i] == got.lines[i]) continue;
    return absl::StrCat("lines (", want.lines.size(), " wanted, ", got.lines.size(),
                        " got) differ at #", i, ": want ",
                        i < want.lines.size() ? line_text(want.lines[i]) : "none", ", got ",
                        i < got.lines.size() ? line_text(got.lines[i]) : "none");
  }
  return "equal";
}

// 'YYYY-MM-DD' -> days since 1970-01-01.
absl::StatusOr<int64_t> EpochDays(std::string_view text) {
  int y = 0;
  unsigned m = 0, d = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%d-%u-%u", &y, &m, &d) != 3) {
    return absl::InvalidArgumentError(absl::StrCat("date '", s, "'"));
  }
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m},
                                        std::chrono::day{d}};
  if (!ymd.ok()) return absl::InvalidArgumentError(absl::StrCat("date '", s, "'"));
  return static_cast<int64_t>(std::chrono::sys_days(ymd).time_since_epoch().count());
}

// NUMERIC(10,2) as text ("12.50") -> cents.
absl::StatusOr<int64_t> Cents(std::string_view text) {
  const size_t dot = text.find('.');
  int64_t units = 0, hundredths = 0;
  if (dot == std::string_view::npos || text.size() - dot != 3 ||
      !absl::SimpleAtoi(Sv(text.substr(0, dot)), &units) ||
      !absl::SimpleAtoi(Sv(text.substr(dot + 1)), &hundredths)) {
    return absl::InvalidArgumentError(absl::StrCat("price '", Sv(text), "'"));
  }
  return units * 100 + hundredths;
}

// Debezium's NUMERIC (decimal.handling.mode=precise, JSON converter): base64
// of the unscaled value's big-endian two's complement. Scale 2 -> cents.
absl::StatusOr<int64_t> UnscaledFromBase64(std::string_view text) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string bytes;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    const int v = sextet(c);
    if (v < 0) return absl::InvalidArgumentError(absl::StrCat("base64 '", Sv(text), "'"));
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      bytes.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  if (bytes.empty() || bytes.size() > 8) {
    return absl::InvalidArgumentError(absl::StrCat("decimal bytes of '", Sv(text), "'"));
  }
  int64_t value = static_cast<int8_t>(bytes[0]);  // sign
  for (size_t i = 1; i < bytes.size(); ++i) {
    value = value * 256 + static_cast<uint8_t>(bytes[i]);
  }
  return value;
}

// Which encoding a state comes in.
enum class Form {
  kPlain,     // the driver's log and the SQL query: date and price as text
  kDebezium,  // the aggregate: epoch days and base64 unscaled decimals
};

absl::StatusOr<LineState> ParseLine(simdjson::dom::object object, Form form) {
  LineState line;
  int fields = 0;
  for (auto [key, value] : object) {
    std::string_view text;
    simdjson::error_code err = simdjson::SUCCESS;
    if (key == "id") {
      err = value.get(line.id);
    } else if (key == "order_id") {
      err = value.get(line.order_id);
    } else if (key == "quantity") {
      err = value.get(line.quantity);
    } else if (key == "product") {
      err = value.get(text);
      line.product = std::string(text);
    } else if (key == "status") {
      err = value.get(text);
      line.status = std::string(text);
    } else if (key == "price") {
      err = value.get(text);
      if (!err) {
        absl::StatusOr<int64_t> cents =
            form == Form::kPlain ? Cents(text) : UnscaledFromBase64(text);
        if (!cents.ok()) return cents.status();
        line.price_cents = *cents;
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unexpected line field '", Sv(key), "'"));
    }
    if (err) {
      return absl::InvalidArgumentError(absl::StrCat("line field '", Sv(key), "': ",
                                                     simdjson::error_message(err)));
    }
    ++fields;
  }
  if (fields != 6) return absl::InvalidArgumentError(absl::StrCat("line has ", fields, " fields"));
  return line;
}

// Aggregate-only fields.
struct SourceTx {
  std::string id;
  int64_t position = -1;
  int64_t version = 0;
};

// An order in either form; `source_tx` receives the aggregate's source_tx and
// version (REQUIRES form kDebezium when given).
absl::StatusOr<OrderState> ParseOrder(simdjson::dom::element element, Form form,
                                      SourceTx* source_tx = nullptr) {
  simdjson::dom::object object;
  if (element.get(object)) return absl::InvalidArgumentError("order is not an object");
  OrderState order;
  int fields = 0;
  for (auto [key, value] : object) {
    std::string_view text;
    simdjson::error_code err = simdjson::SUCCESS;
    if (key == "id") {
      err = value.get(order.id);
    } else if (key == "customer_id") {
      err = value.get(order.customer_id);
    } else if (key == "status") {
      err = value.get(text);
      order.status = std::string(text);
    } else if (key == "order_date") {
      if (form == Form::kDebezium) {
        err = value.get(order.order_date);
      } else if (!(err = value.get(text))) {
        absl::StatusOr<int64_t> days = EpochDays(text);
        if (!days.ok()) return days.status();
        order.order_date = *days;
      }
    } else if (key == "lines") {
      simdjson::dom::array lines;
      err = value.get(lines);
      for (simdjson::dom::element l : lines) {
        simdjson::dom::object line;
        if (l.get(line)) return absl::InvalidArgumentError("line is not an object");
        absl::StatusOr<LineState> parsed = ParseLine(line, form);
        if (!parsed.ok()) return parsed.status();
        order.lines.push_back(*std::move(parsed));
      }
    } else if (source_tx != nullptr && key == "source_tx") {
      simdjson::dom::object tx;
      if (!(err = value.get(tx)) && !(err = tx["id"].get(text))) {
        source_tx->id = std::string(text);
        err = tx["position"].get(source_tx->position);
      }
      --fields;
    } else if (source_tx != nullptr && key == "version") {
      err = value.get(source_tx->version);
      --fields;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unexpected order field '", Sv(key), "'"));
    }
    if (err) {
      return absl::InvalidArgumentError(absl::StrCat("order field '", Sv(key), "': ",
                                                      simdjson::error_message(err)));
    }
    ++fields;
  }
  if (fields != 5) return absl::InvalidArgumentError(absl::StrCat("order has ", fields, " fields"));
  return order;
}

// --- the driver's committed-transactions log ---

// One committed transaction's view of one order.
struct LoggedVersion {
  int64_t seq = 0;   // commit order among the transactions touching the order
  std::string txid;  // Debezium's source.txId
  std::optional<OrderState> state;  // nullopt: deleted
};

struct DriverLog {
  int64_t transactions = 0;
  int64_t outbox_rows = 0;
  std::map<int64_t, std::vector<LoggedVersion>> by_order;  // seq order
  size_t versions() const {
    size_t n = 0;
    for (const auto& [id, v] : by_order) n += v.size();
    return n;
  }
};

absl::StatusOr<DriverLog> ReadDriverLog(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  DriverLog log;
  simdjson::dom::parser parser;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    auto fail = [&](std::string_view what) {
      return absl::DataLossError(absl::StrCat(path, ":", number, ": ", Sv(what)));
    };
    simdjson::dom::element doc;
    uint64_t txid = 0;
    int64_t seq = 0;
    simdjson::dom::array orders, states;
    if (parser.parse(line).get(doc) || doc["txid"].get(txid) || doc["seq"].get(seq) ||
        doc["orders"].get(orders) || doc["states"].get(states) ||
        orders.size() != states.size()) {
      return fail("not a log line");
    }
    ++log.transactions;
    int64_t outbox = 0;
    if (doc["outbox"].get(outbox)) return fail("outbox");
    log.outbox_rows += outbox;
    for (size_t i = 0; i < orders.size(); ++i) {
      int64_t id = 0;
      if (orders.at(i).get(id)) return fail("order id");
      LoggedVersion version{seq, absl::StrCat(txid), std::nullopt};
      simdjson::dom::element state;
      if (states.at(i).get(state)) return fail("state");
      if (state.type() != simdjson::dom::element_type::NULL_VALUE) {
        absl::StatusOr<OrderState> parsed = ParseOrder(state, Form::kPlain);
        if (!parsed.ok()) return fail(parsed.status().ToString());
        version.state = *std::move(parsed);
      }
      log.by_order[id].push_back(std::move(version));
    }
  }
  for (auto& [id, versions] : log.by_order) {
    std::sort(versions.begin(), versions.end(),
              [](const LoggedVersion& a, const LoggedVersion& b) { return a.seq < b.seq; });
  }
  return log;
}

// PostgreSQL's answer: every order of `ids` that exists, with its lines, in
// plain form, from one query.
constexpr char kOrdersJsonSql[] = R"sql(
SELECT COALESCE(json_agg(json_build_object(
    'id', o.id, 'customer_id', o.customer_id,
    'order_date', o.order_date::text, 'status', o.status,
    'lines', COALESCE((
        SELECT json_agg(json_build_object(
                   'id', l.id, 'order_id', l.order_id, 'product', l.product,
                   'quantity', l.quantity, 'price', l.price::text,
                   'status', l.status) ORDER BY l.id)
        FROM inventory.orderline l WHERE l.order_id = o.id), '[]'::json))
    ORDER BY o.id), '[]'::json)
FROM inventory.purchaseorder o WHERE o.id = ANY($1::int[]))sql";

// One outbox row of PostgreSQL.
struct OutboxRow {
  std::string aggregate_id, type, payload;
};

// Produces copies of `records` (key, value, headers) to their topic and
// partition, as a producer retrying after a lost acknowledgement would.
absl::Status ProduceCopies(const std::string& topic,
                           const std::vector<const ConsumedRecord*>& records) {
  absl::StatusOr<KafkaPtr> producer = MakeClient(RD_KAFKA_PRODUCER, {});
  if (!producer.ok()) return producer.status();
  for (const ConsumedRecord* r : records) {
    rd_kafka_headers_t* headers = rd_kafka_headers_new(r->headers.size());
    for (const auto& [name, value] : r->headers) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()),
                          value ? value->data() : nullptr,
                          value ? static_cast<ssize_t>(value->size()) : 0);
    }
    std::string key = r->key.value_or(""), value = r->value.value_or("");
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(r->partition),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(value.data(), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_headers_destroy(headers);  // not handed over
      return ToStatus(err, "producing a copy");
    }
  }
  return ToStatus(rd_kafka_flush(producer->get(), 30000), "flushing the copies");
}

// One emitted record, decoded.
struct Emitted {
  const ConsumedRecord* record = nullptr;
  std::optional<OrderState> state;  // nullopt: tombstone
  SourceTx tx;
};

absl::StatusOr<Emitted> Decode(simdjson::dom::parser& parser, const ConsumedRecord& r) {
  Emitted e;
  e.record = &r;
  if (!r.value) return e;
  simdjson::dom::element doc;
  if (parser.parse(*r.value).get(doc)) {
    return absl::DataLossError(absl::StrCat("p", r.partition, "@", r.offset, ": not JSON"));
  }
  absl::StatusOr<OrderState> state = ParseOrder(doc, Form::kDebezium, &e.tx);
  if (!state.ok()) {
    return absl::DataLossError(absl::StrCat("p", r.partition, "@", r.offset, ": ",
                                            state.status().ToString()));
  }
  e.state = *std::move(state);
  return e;
}

// The connector config: scripts/connect.d/orders-connector.json with its
// placeholders replaced.
absl::StatusOr<std::string> ConnectorConfig(const std::map<std::string, std::string>& values) {
  const std::string path = absl::StrCat(kRepoRoot, "/scripts/connect.d/orders-connector.json");
  std::string text = ReadTextFile(path);
  if (text.empty()) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  for (const auto& [name, value] : values) {
    text = absl::StrReplaceAll(text, {{absl::StrCat("${", name, "}"), value}});
  }
  if (text.find("${") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has a placeholder the test does not set"));
  }
  return text;
}

// The "state" fields of a connector status reply: the connector's, then one
// per task.
std::vector<std::string> ConnectorStates(const std::string& body) {
  std::vector<std::string> states;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return states;
  std::string_view state;
  if (!doc["connector"]["state"].get(state)) states.emplace_back(state);
  simdjson::dom::array tasks;
  if (!doc["tasks"].get(tasks)) {
    for (simdjson::dom::element task : tasks) {
      if (!task["state"].get(state)) states.emplace_back(state);
    }
  }
  return states;
}

class OrderServiceE2eTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    start_ = Clock::now();
    DefaultPostgresEnvironment();
    absl::StatusOr<std::unique_ptr<Postgres>> pg = Postgres::Connect();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = *std::move(pg);
    absl::StatusOr<std::optional<std::string>> schema =
        pg_->Value("SELECT to_regclass('inventory.orderline')::text");
    ASSERT_TRUE(schema.ok() && schema->has_value())
        << "PostgreSQL at " << EnvOr("PGHOST", "") << ":" << EnvOr("PGPORT", "")
        << " has no inventory.orderline: start it with scripts/postgres start";
    absl::StatusOr<HttpReply> root = Http("GET", "/connector-plugins");
    ASSERT_TRUE(root.ok()) << root.status();
    ASSERT_EQ(root->code, 200) << root->body;
    ASSERT_NE(root->body.find("PostgresConnector"), std::string::npos)
        << "the worker at " << ConnectUrl() << " has no Debezium PostgreSQL connector";

    absl::StatusOr<std::string> dir = MakeTempDir("order_service_e2e_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
    prefix_ = UniqueName("e2e");
    slot_ = absl::StrReplaceAll(absl::StrCat("tributary_", prefix_), {{"-", "_"}});
    connector_ = absl::StrCat(prefix_, "-orders");
  }

  void TearDown() override {
    aggregator_.reset();  // SIGKILLs a child still running
    driver_.reset();
    if (connector_registered_) DropConnector();
    if (dir_.empty()) return;
    if (HasFailure()) {
      std::printf("[e2e] kept %s (configs, driver log, child logs)\n", dir_.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  template <typename... Args>
  void Note(const Args&... args) {
    const double s = std::chrono::duration<double>(Clock::now() - start_).count();
    std::printf("[e2e %6.2fs] %s\n", s, absl::StrCat(args...).c_str());
    std::fflush(stdout);
  }

  std::string Topic(std::string_view table) const { return absl::StrCat(prefix_, ".", Sv(table)); }

  // --- the connector ---

  // Creates the connector's topics (the transaction topic with one
  // partition) and the connector, then waits until it streams.
  void RegisterConnector() {
    ASSERT_STATUS_OK(CreateTopic(Topic("transaction"), 1));
    for (const char* table : {"inventory.purchaseorder", "inventory.orderline",
                              "inventory.outbox"}) {
      ASSERT_STATUS_OK(CreateTopic(Topic(table), kTablePartitions));
    }
    absl::StatusOr<std::string> config = ConnectorConfig({
        {"TRIBUTARY_TOPIC_PREFIX", prefix_},
        {"TRIBUTARY_SNAPSHOT_MODE", "no_data"},  // this run's changes only
        {"TRIBUTARY_SCHEMAS_ENABLE", "false"},
        {"TRIBUTARY_SLOT_NAME", slot_},
        {"TRIBUTARY_TOPIC_PARTITIONS", absl::StrCat(kTablePartitions)},
        {"TRIBUTARY_POSTGRES_PORT", EnvOr("PGPORT", "15432")},
    });
    ASSERT_TRUE(config.ok()) << config.status();
    // PostgreSQL keeps the WAL from the slot's creation on (Debezium does not
    // confirm LSNs to it), so that Debezium can be rewound (ReplayFrom).
    const std::string anchor = "\"tasks.max\": \"1\",";
    ASSERT_NE(config->find(anchor), std::string::npos) << *config;
    config->insert(config->find(anchor) + anchor.size(), " \"flush.lsn.source\": \"false\",");
    const auto deadline = Clock::now() + kConnectorTimeout;
    while (true) {
      absl::StatusOr<HttpReply> reply = Http("POST", "/connectors", *config);
      ASSERT_TRUE(reply.ok()) << reply.status();
      if (reply->code == 201) break;
      // 409: the worker is rebalancing; anything else is final.
      ASSERT_EQ(reply->code, 409) << "creating connector " << connector_ << ": " << reply->body;
      ASSERT_LT(Clock::now(), deadline) << reply->body;
      std::this_thread::sleep_for(500ms);
    }
    connector_registered_ = true;
    ASSERT_NO_FATAL_FAILURE(WaitUntilStreaming(""));
    Note("connector ", connector_, " streams (slot ", slot_, ", topic prefix ", prefix_, ")");
  }

  // The backend pid of the slot's walsender; "" while the slot is inactive.
  std::string SlotPid() {
    absl::StatusOr<std::optional<std::string>> pid = pg_->Value(
        "SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1 AND active",
        {slot_});
    return pid.ok() && pid->has_value() ? **pid : "";
  }

  // Waits until the connector and its task are RUNNING and the slot is
  // streaming to a walsender other than `old_pid`.
  void WaitUntilStreaming(const std::string& old_pid) {
    const auto deadline = Clock::now() + kConnectorTimeout;
    std::string last;
    while (Clock::now() < deadline) {
      absl::StatusOr<HttpReply> status =
          Http("GET", absl::StrCat("/connectors/", connector_, "/status"));
      ASSERT_TRUE(status.ok()) << status.status();
      last = status->body;
      const std::vector<std::string> states = ConnectorStates(status->body);
      ASSERT_EQ(std::count(states.begin(), states.end(), "FAILED"), 0)
          << "connector " << connector_ << " failed: " << status->body;
      const bool running = states.size() >= 2 && std::all_of(states.begin(), states.end(),
                                                              [](const std::string& s) {
                                                                return s == "RUNNING";
                                                              });
      const std::string pid = SlotPid();
      if (running && !pid.empty() && pid != old_pid) return;
      std::this_thread::sleep_for(200ms);
    }
    FAIL() << "connector " << connector_ << " not streaming within "
           << kConnectorTimeout.count() << " s; last status " << last;
  }

  // Restarts the connector and its task (Connect's REST API); Debezium then
  // resumes from its last committed offset.
  void RestartConnector() {
    const std::string old_pid = SlotPid();
    const auto started = Clock::now();
    absl::StatusOr<HttpReply> reply =
        Http("POST", absl::StrCat("/connectors/", connector_, "/restart?includeTasks=true"));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->code == 202 || reply->code == 204) << reply->code << " " << reply->body;
    ASSERT_NO_FATAL_FAILURE(WaitUntilStreaming(old_pid));
    Note("restarted the connector and its task: streaming again after ",
         std::chrono::duration<double>(Clock::now() - started).count(), " s (walsender ",
         old_pid, " -> ", SlotPid(), ")");
  }

  // The source offsets Kafka Connect has committed for the connector, in the
  // form PATCH /connectors/<name>/offsets takes.
  // Waits for the first commit (offset.flush.interval.ms) if need be.
  void SaveOffsets(std::string& offsets) {
    const auto deadline = Clock::now() + kConnectorTimeout;
    while (true) {
      absl::StatusOr<HttpReply> reply =
          Http("GET", absl::StrCat("/connectors/", connector_, "/offsets"));
      ASSERT_TRUE(reply.ok()) << reply.status();
      ASSERT_EQ(reply->code, 200) << reply->body;
      if (reply->body.find("\"lsn\"") != std::string::npos) {
        offsets = reply->body;
        break;
      }
      ASSERT_LT(Clock::now(), deadline) << "no offsets committed: " << reply->body;
      std::this_thread::sleep_for(200ms);
    }
    Note("saved Debezium's committed offsets: ", offsets);
  }

  // Stops the connector, sets its offsets back to `offsets` and resumes it:
  // what a Connect worker that crashed before committing its offsets leaves
  // behind. Debezium writes again every transaction after those offsets.
  void ReplayFrom(const std::string& offsets) {
    const std::string old_pid = SlotPid();
    const auto started = Clock::now();
    absl::StatusOr<HttpReply> reply =
        Http("PUT", absl::StrCat("/connectors/", connector_, "/stop"));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->code == 202 || reply->code == 204) << reply->code << " " << reply->body;
    const auto deadline = Clock::now() + kConnectorTimeout;
    while (true) {
      reply = Http("GET", absl::StrCat("/connectors/", connector_, "/status"));
      ASSERT_TRUE(reply.ok()) << reply.status();
      const std::vector<std::string> states = ConnectorStates(reply->body);
      if (states.size() == 1 && states[0] == "STOPPED") break;
      ASSERT_LT(Clock::now(), deadline) << "connector not STOPPED: " << reply->body;
      std::this_thread::sleep_for(200ms);
    }
    reply = Http("PATCH", absl::StrCat("/connectors/", connector_, "/offsets"), offsets);
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->code, 200) << reply->body;
    reply = Http("PUT", absl::StrCat("/connectors/", connector_, "/resume"));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->code, 202) << reply->body;
    ASSERT_NO_FATAL_FAILURE(WaitUntilStreaming(old_pid));
    Note("stopped Debezium, set its offsets back, resumed: streaming again after ",
         std::chrono::duration<double>(Clock::now() - started).count(), " s");
  }

  // Ends the connector's replication connection from the database side, as
  // a crash of the connection would: Debezium's task restarts from the last
  // offsets Kafka Connect committed and writes again what followed them.
  void CutReplicationConnection() {
    const std::string old_pid = SlotPid();
    ASSERT_FALSE(old_pid.empty()) << "slot " << slot_ << " not streaming";
    const auto started = Clock::now();
    absl::StatusOr<std::optional<std::string>> ended =
        pg_->Value("SELECT pg_terminate_backend($1::int)::text", {old_pid});
    ASSERT_TRUE(ended.ok() && ended->value_or("") == "true") << ended.status();
    ASSERT_NO_FATAL_FAILURE(WaitUntilStreaming(old_pid));
    Note("cut the replication connection: Debezium streams again after ",
         std::chrono::duration<double>(Clock::now() - started).count(), " s (walsender ",
         old_pid, " -> ", SlotPid(), ")");
  }

  // Deletes the connector, then drops its slot and publication.
  void DropConnector() {
    absl::StatusOr<HttpReply> reply = Http("DELETE", absl::StrCat("/connectors/", connector_));
    EXPECT_TRUE(reply.ok() && (reply->code == 204 || reply->code == 200))
        << (reply.ok() ? reply->body : reply.status().ToString());
    const auto deadline = Clock::now() + 30s;
    while (!SlotPid().empty() && Clock::now() < deadline) std::this_thread::sleep_for(200ms);
    absl::StatusOr<ResultPtr> dropped = pg_->Exec(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = $1",
        {slot_});
    EXPECT_TRUE(dropped.ok()) << dropped.status();
    EXPECT_TRUE(pg_->Exec(absl::StrCat("DROP PUBLICATION IF EXISTS \"", slot_, "\"")).ok());
  }

  // --- the child processes ---

  // With `route_outbox`, order-aggregator also routes the outbox table's
  // rows to <prefix>.outbox.event.<aggregatetype>.
  void StartAggregator(bool route_outbox = false) {
    app_id_ = UniqueName("e2e-oagg");
    output_ = UniqueTopic("e2e-aggregates");
    dead_letters_ = UniqueTopic("e2e-dlq");
    ASSERT_STATUS_OK(CreateTopic(output_, kTablePartitions));
    ASSERT_STATUS_OK(CreateTopic(dead_letters_, 1));
    std::string outbox_keys;
    if (route_outbox) {
      ASSERT_STATUS_OK(CreateTopic(Topic("outbox.event.order"), kTablePartitions));
      outbox_keys = absl::StrCat("outbox.topic=", Topic("inventory.outbox"),
                                 "\noutbox.topic.prefix=", Topic("outbox.event."), "\n");
    }
    const std::string config = absl::StrCat(dir_, "/order-aggregator.properties");
    std::ofstream(config) << outbox_keys << "application.id=" << app_id_ << "\n"
                          << "bootstrap.servers=" << BootstrapServers() << "\n"
                          << "state.dir=" << dir_ << "/aggregator-state\n"
                          << "processing.guarantee=exactly_once_v2\n"
                          << "commit.interval.ms=100\n"
                          << "consumer.session.timeout.ms=6000\n"
                          << "orders.topic=" << Topic("inventory.purchaseorder") << "\n"
                          << "lines.topic=" << Topic("inventory.orderline") << "\n"
                          << "transaction.topic=" << Topic("transaction") << "\n"
                          << "output.topic=" << output_ << "\n"
                          << "dead.letter.topic=" << dead_letters_ << "\n";
    aggregator_log_ = absl::StrCat(dir_, "/order-aggregator.log");
    auto process = ChildProcess::Start({kOrderAggregator, "--config", config}, aggregator_log_);
    ASSERT_TRUE(process.ok()) << process.status();
    aggregator_ = *std::move(process);
    Note("started order-aggregator (pid ", aggregator_->pid(), ", application.id ", app_id_, ")");
  }

  // SIGTERM: order-aggregator must commit and exit 0.
  void StopAggregator() {
    ASSERT_STATUS_OK(aggregator_->Signal(SIGTERM));
    absl::StatusOr<int> status = aggregator_->Wait(kExitTimeout);
    ASSERT_TRUE(status.ok()) << status.status() << "\n" << TailOfFile(aggregator_log_);
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << DescribeWaitStatus(*status) << "\n"
        << TailOfFile(aggregator_log_);
    aggregator_.reset();
  }

  // order-service with outbox rows; bulk_every 0: no bulk inserts.
  void StartDriver(int transactions, int bulk_every) {
    driver_log_ = absl::StrCat(dir_, "/order-service.log");
    driver_output_ = absl::StrCat(dir_, "/order-service.out");
    auto process = ChildProcess::Start(
        {kOrderService, "--sessions", absl::StrCat(kSessions), "--transactions",
         absl::StrCat(transactions), "--seed", "20240607", "--log", driver_log_,
         "--bulk-every", absl::StrCat(bulk_every), "--bulk-lines", absl::StrCat(kBulkLines),
         "--rate", absl::StrCat(kRate), "--outbox"},
        driver_output_);
    ASSERT_TRUE(process.ok()) << process.status();
    driver_ = *std::move(process);
    Note("started order-service: ", transactions, " transactions from ", kSessions,
         " sessions at ", kRate, "/s",
         bulk_every > 0 ? absl::StrCat(", bulk inserts of ", kBulkLines, " lines every ",
                                       bulk_every)
                        : "");
  }

  // Transactions the driver has committed so far (lines of its log).
  int64_t DriverCommitted() const {
    const std::string text = ReadTextFile(driver_log_);
    return std::count(text.begin(), text.end(), '\n');
  }

  // Waits until the driver has committed `count` transactions.
  void WaitForDriverAt(int64_t count) {
    const auto deadline = Clock::now() + kDriverTimeout;
    int64_t committed = 0;
    while ((committed = DriverCommitted()) < count) {
      ASSERT_TRUE(driver_->Running()) << "order-service exited early\n"
                                      << TailOfFile(driver_output_);
      ASSERT_LT(Clock::now(), deadline) << "order-service stalled at " << committed;
      std::this_thread::sleep_for(100ms);
    }
    Note("order-service has committed ", committed, " transactions");
  }

  void WaitForDriver() {
    absl::StatusOr<int> status = driver_->Wait(kDriverTimeout);
    ASSERT_TRUE(status.ok()) << status.status() << "\n" << TailOfFile(driver_output_);
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "order-service " << DescribeWaitStatus(*status) << "\n"
        << TailOfFile(driver_output_);
    driver_.reset();
    Note(TailOfFile(driver_output_, 1));
  }

  // --- checks ---

  // Polls the output (read_committed) until every order's latest record
  // equals `want` (nullopt: a tombstone), within kCatchUpTimeout.
  void WaitUntilCaughtUp(const std::map<int64_t, std::optional<OrderState>>& want) {
    absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(output_, kTablePartitions);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::set<int64_t> behind;
    for (const auto& [id, state] : want) behind.insert(id);
    simdjson::dom::parser parser;
    size_t seen = 0;
    std::string last_problem;
    const auto started = Clock::now();
    while (!behind.empty()) {
      ASSERT_TRUE(aggregator_->Running()) << "order-aggregator exited\n"
                                          << TailOfFile(aggregator_log_);
      if (Clock::now() - started > kCatchUpTimeout) {
        FAIL() << behind.size() << " of " << want.size() << " orders not caught up within "
               << kCatchUpTimeout.count() << " s (" << (*reader)->size()
               << " versions read); e.g. order " << *behind.begin() << ": " << last_problem
               << "\n"
               << TailOfFile(aggregator_log_);
      }
      ASSERT_STATUS_OK((*reader)->Poll(200ms));
      const std::vector<ConsumedRecord>& records = (*reader)->records();
      std::map<int64_t, const ConsumedRecord*> updated;  // latest new record per order
      for (; seen < records.size(); ++seen) {
        int64_t id = 0;
        ASSERT_TRUE(records[seen].key && absl::SimpleAtoi(*records[seen].key, &id))
            << "record without an order id key at p" << records[seen].partition << "@"
            << records[seen].offset;
        updated[id] = &records[seen];
      }
      for (const auto& [id, record] : updated) {
        auto it = want.find(id);
        ASSERT_NE(it, want.end()) << "output has order " << id << ", which this run never touched";
        absl::StatusOr<Emitted> got = Decode(parser, *record);
        ASSERT_TRUE(got.ok()) << got.status();
        if (got->state == it->second) {
          behind.erase(id);
        } else {
          behind.insert(id);
          if (id == *behind.begin()) {
            last_problem = !it->second ? "want a tombstone"
                           : !got->state ? "got a tombstone"
                                         : Diff(*it->second, *got->state);
          }
        }
      }
    }
    Note("caught up ", std::chrono::duration<double>(Clock::now() - started).count(),
         " s after the driver finished: ", (*reader)->size(), " versions read, all ",
         want.size(), " orders equal PostgreSQL's");
  }

  // (b) and (c) over the whole output.
  void ExpectVersionsAreCommittedStates(const DriverLog& log) {
    absl::StatusOr<std::vector<ConsumedRecord>> output =
        ReadWholeTopic(output_, kTablePartitions);
    ASSERT_TRUE(output.ok()) << output.status();
    simdjson::dom::parser parser;
    std::map<int64_t, std::vector<Emitted>> by_order;
    for (const ConsumedRecord& r : *output) {
      int64_t id = 0;
      ASSERT_TRUE(r.key && absl::SimpleAtoi(*r.key, &id)) << "p" << r.partition << "@" << r.offset;
      absl::StatusOr<Emitted> e = Decode(parser, r);
      ASSERT_TRUE(e.ok()) << e.status();
      by_order[id].push_back(*std::move(e));
    }
    int offending = 0;
    std::string first;
    auto offend = [&](int64_t id, std::string problem) {
      if (offending++ == 0) first = absl::StrCat("order ", id, ": ", problem);
    };
    for (const auto& [id, emitted] : by_order) {
      if (log.by_order.count(id) == 0) offend(id, "emitted, but no transaction touched it");
    }
    size_t tombstones = 0;
    for (const auto& [id, logged] : log.by_order) {
      const std::vector<Emitted>& got = by_order[id];
      if (got.size() != logged.size()) {
        offend(id, absl::StrCat(got.size(), " versions emitted, ", logged.size(),
                                " committed transactions touched it"));
        continue;
      }
      int64_t last_position = -1;
      for (size_t i = 0; i < got.size(); ++i) {
        const Emitted& e = got[i];
        const LoggedVersion& want = logged[i];
        const std::string where =
            absl::StrCat("record #", i + 1, " (p", e.record->partition, "@", e.record->offset,
                         ", want tx ", want.txid, "): ");
        if (e.record->partition != got.front().record->partition) {
          offend(id, absl::StrCat(where, "in another partition"));
          break;
        }
        if (!want.state || !e.state) {
          if (want.state || e.state || i + 1 != got.size()) {
            offend(id, absl::StrCat(where, want.state ? "unexpected tombstone"
                                                      : "want the last record a tombstone"));
            break;
          }
          ++tombstones;
          continue;
        }
        if (e.tx.version != static_cast<int64_t>(i) + 1 || e.tx.id != want.txid ||
            e.tx.position <= last_position) {
          offend(id, absl::StrCat(where, "version ", e.tx.version, " tx ", e.tx.id,
                                  " position ", e.tx.position, " (previous ", last_position,
                                  ")"));
          break;
        }
        last_position = e.tx.position;
        if (!(*e.state == *want.state)) {
          offend(id, absl::StrCat(where, "not the state the transaction committed: ",
                                  Diff(*want.state, *e.state)));
          break;
        }
      }
    }
    Note("output: ", output->size(), " records (", tombstones, " tombstones) over ",
         by_order.size(), " orders; driver log: ", log.transactions, " transactions, ",
         log.versions(), " (transaction, order) pairs");
    EXPECT_EQ(offending, 0) << offending << " offending order(s); first: " << first;
    EXPECT_EQ(output->size(), log.versions());
  }

  // How many change events and transactions Debezium wrote more than once
  // (same source.txId and source.lsn; same xid in BEGIN markers).
  void NoteRedeliveries() {
    simdjson::dom::parser parser;
    size_t events = 0, begins = 0;
    std::set<std::pair<int64_t, int64_t>> distinct_events;
    std::set<std::string> distinct_begins;
    for (const char* table : {"inventory.purchaseorder", "inventory.orderline",
                              "inventory.outbox"}) {
      absl::StatusOr<std::vector<ConsumedRecord>> records =
          ReadWholeTopic(Topic(table), kTablePartitions);
      ASSERT_TRUE(records.ok()) << records.status();
      for (const ConsumedRecord& r : *records) {
        if (!r.value) continue;  // the tombstone after a delete
        simdjson::dom::element doc;
        int64_t txid = 0, lsn = 0;
        ASSERT_FALSE(parser.parse(*r.value).get(doc) || doc["source"]["txId"].get(txid) ||
                     doc["source"]["lsn"].get(lsn))
            << *r.value;
        ++events;
        distinct_events.insert({txid, lsn});
      }
    }
    absl::StatusOr<std::vector<ConsumedRecord>> markers = ReadWholeTopic(Topic("transaction"), 1);
    ASSERT_TRUE(markers.ok()) << markers.status();
    for (const ConsumedRecord& r : *markers) {
      if (!r.value || r.value->find("\"BEGIN\"") == std::string::npos) continue;
      simdjson::dom::element doc;
      std::string_view id;
      ASSERT_FALSE(parser.parse(*r.value).get(doc) || doc["id"].get(id)) << *r.value;
      ++begins;
      distinct_begins.insert(std::string(id.substr(0, id.find(':'))));
    }
    std::string dropped = "?";
    const std::string log = ReadTextFile(aggregator_log_);
    const size_t at = log.rfind("duplicates dropped ");
    if (at != std::string::npos) {
      dropped = log.substr(at + 19, log.find_first_of("\n,", at + 19) - at - 19);
    }
    Note("Debezium wrote ", events, " change events (", events - distinct_events.size(),
         " repeated) and ", begins, " BEGIN markers (", begins - distinct_begins.size(),
         " repeated transactions); order-aggregator dropped ", dropped, " duplicates");
  }

  void ExpectNoDeadLetters() {
    absl::StatusOr<std::vector<ConsumedRecord>> dead = ReadWholeTopic(dead_letters_, 1);
    ASSERT_TRUE(dead.ok()) << dead.status();
    EXPECT_EQ(dead->size(), 0u) << "dead letter: "
                                << (dead->empty() ? "" : dead->front().value.value_or(""));
  }

  // The outbox rows PostgreSQL holds for the orders `ids`, by event id.
  std::map<std::string, OutboxRow> DatabaseOutbox(const std::vector<int64_t>& ids) {
    std::map<std::string, OutboxRow> rows;
    absl::StatusOr<ResultPtr> result = pg_->Exec(
        "SELECT id::text, aggregateid, type, payload::text FROM inventory.outbox "
        "WHERE aggregatetype = 'order' AND aggregateid = ANY($1::text[])",
        {absl::StrCat("{", absl::StrJoin(ids, ","), "}")});
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return rows;
    for (int r = 0; r < PQntuples(result->get()); ++r) {
      rows[PQgetvalue(result->get(), r, 0)] = {PQgetvalue(result->get(), r, 1),
                                               PQgetvalue(result->get(), r, 2),
                                               PQgetvalue(result->get(), r, 3)};
    }
    return rows;
  }

  // Polls the outbox event topic until it holds every id of `rows`.
  void WaitForOutboxEvents(const std::map<std::string, OutboxRow>& rows) {
    absl::StatusOr<std::unique_ptr<TopicReader>> reader =
        TopicReader::Open(Topic("outbox.event.order"), kTablePartitions);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::set<std::string> missing;
    for (const auto& [id, row] : rows) missing.insert(id);
    size_t seen = 0;
    const auto started = Clock::now();
    while (!missing.empty()) {
      ASSERT_TRUE(aggregator_->Running()) << "order-aggregator exited\n"
                                          << TailOfFile(aggregator_log_);
      ASSERT_LT(Clock::now() - started, kCatchUpTimeout)
          << missing.size() << " of " << rows.size() << " outbox events missing, e.g. "
          << *missing.begin() << "\n"
          << TailOfFile(aggregator_log_);
      ASSERT_STATUS_OK((*reader)->Poll(200ms));
      for (; seen < (*reader)->size(); ++seen) {
        missing.erase((*reader)->records()[seen].Header("id").value_or(""));
      }
    }
    Note("all ", rows.size(), " outbox events on ", Topic("outbox.event.order"), " after ",
         std::chrono::duration<double>(Clock::now() - started).count(), " s");
  }

  // Every outbox row once on the event topic, keyed by its aggregate id,
  // with its type header and payload; returns the topic's records.
  std::vector<ConsumedRecord> ExpectOutboxEventsOnceEach(
      const std::map<std::string, OutboxRow>& rows) {
    absl::StatusOr<std::vector<ConsumedRecord>> events =
        ReadWholeTopic(Topic("outbox.event.order"), kTablePartitions);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return {};
    std::map<std::string, int> count;
    int offending = 0;
    std::string first;
    for (const ConsumedRecord& e : *events) {
      const std::string id = e.Header("id").value_or("");
      ++count[id];
      auto row = rows.find(id);
      std::string problem;
      if (row == rows.end()) {
        problem = "no such outbox row in PostgreSQL";
      } else if (e.key != row->second.aggregate_id || e.Header("type") != row->second.type ||
                 e.value != row->second.payload) {
        problem = absl::StrCat("key/type/payload ", e.key.value_or("<null>"), " / ",
                               e.Header("type").value_or("<none>"), " / ",
                               e.value.value_or("<null>"), "; want ", row->second.aggregate_id,
                               " / ", row->second.type, " / ", row->second.payload);
      }
      if (!problem.empty() && offending++ == 0) {
        first = absl::StrCat("event ", id, " at p", e.partition, "@", e.offset, ": ", problem);
      }
    }
    for (const auto& [id, n] : count) {
      if (n > 1 && offending++ == 0) first = absl::StrCat("event ", id, " appears ", n, " times");
    }
    EXPECT_EQ(offending, 0) << offending << " offending event(s); first: " << first;
    EXPECT_EQ(count.size(), rows.size());
    EXPECT_EQ(events->size(), rows.size());
    Note("outbox: ", events->size(), " events for ", rows.size(), " outbox rows");
    return *std::move(events);
  }

  // Runs shipment-service over the outbox event topic until it is idle;
  // its counts from "processed N, duplicates skipped M".
  std::pair<int64_t, int64_t> RunShipmentService(const std::string& group,
                                                 const std::string& state_dir,
                                                 const std::string& processed_log) {
    const std::string log = absl::StrCat(dir_, "/shipment-service.", group, ".log");
    auto process = ChildProcess::Start(
        {kShipmentService, "--bootstrap", BootstrapServers(), "--topic",
         Topic("outbox.event.order"), "--group", group, "--state-dir", state_dir,
         "--max-idle-ms", "3000", "--processed-log", processed_log},
        log);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return {-1, -1};
    absl::StatusOr<int> status = (*process)->Wait(kExitTimeout + 30s);
    EXPECT_TRUE(status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << (status.ok() ? DescribeWaitStatus(*status) : status.status().ToString()) << "\n"
        << TailOfFile(log);
    const std::string text = ReadTextFile(log);
    long long processed = -1, skipped = -1;
    const size_t at = text.rfind("processed ");
    EXPECT_TRUE(at != std::string::npos &&
                std::sscanf(text.c_str() + at, "processed %lld, duplicates skipped %lld",
                            &processed, &skipped) == 2)
        << TailOfFile(log);
    Note("shipment-service (group ", group, "): processed ", processed, ", duplicates skipped ",
         skipped);
    return {processed, skipped};
  }

  // PostgreSQL's current state of `ids`: nullopt for a deleted order.
  std::map<int64_t, std::optional<OrderState>> DatabaseState(const std::vector<int64_t>& ids) {
    std::map<int64_t, std::optional<OrderState>> state;
    for (int64_t id : ids) state[id] = std::nullopt;
    absl::StatusOr<std::optional<std::string>> json =
        pg_->Value(kOrdersJsonSql, {absl::StrCat("{", absl::StrJoin(ids, ","), "}")});
    EXPECT_TRUE(json.ok() && json->has_value()) << json.status();
    if (!json.ok() || !json->has_value()) return state;
    simdjson::dom::parser parser;
    simdjson::dom::array orders;
    EXPECT_FALSE(parser.parse(**json).get(orders));
    for (simdjson::dom::element o : orders) {
      absl::StatusOr<OrderState> parsed = ParseOrder(o, Form::kPlain);
      EXPECT_TRUE(parsed.ok()) << parsed.status();
      if (parsed.ok()) state[parsed->id] = *std::move(parsed);
    }
    return state;
  }

  Clock::time_point start_;
  std::unique_ptr<Postgres> pg_;
  std::string dir_;
  std::string prefix_, slot_, connector_;
  bool connector_registered_ = false;
  std::string app_id_, output_, dead_letters_, aggregator_log_;
  std::string driver_log_, driver_output_;
  std::unique_ptr<ChildProcess> aggregator_;
  std::unique_ptr<ChildProcess> driver_;
};

TEST_F(OrderServiceE2eTest, AggregatesAreCommittedDatabaseStates) {
  ASSERT_NO_FATAL_FAILURE(RegisterConnector());
  ASSERT_NO_FATAL_FAILURE(StartAggregator());
  ASSERT_NO_FATAL_FAILURE(StartDriver(kTransactions, kBulkEvery));

  // Debezium's faults while the driver runs: at 40 % a restart of the
  // connector and its task (REST API); at 60 % a stop, its offsets set back
  // to those committed at 20 %, and a resume, so that it writes a fifth of
  // the run again; at 80 % its replication connection is cut.
  std::string offsets;
  ASSERT_NO_FATAL_FAILURE(WaitForDriverAt(kTransactions / 5));
  ASSERT_NO_FATAL_FAILURE(SaveOffsets(offsets));
  ASSERT_NO_FATAL_FAILURE(WaitForDriverAt(kTransactions * 2 / 5));
  ASSERT_NO_FATAL_FAILURE(RestartConnector());
  ASSERT_NO_FATAL_FAILURE(WaitForDriverAt(kTransactions * 3 / 5));
  ASSERT_NO_FATAL_FAILURE(ReplayFrom(offsets));
  ASSERT_NO_FATAL_FAILURE(WaitForDriverAt(kTransactions * 4 / 5));
  ASSERT_NO_FATAL_FAILURE(CutReplicationConnection());
  ASSERT_NO_FATAL_FAILURE(WaitForDriver());

  absl::StatusOr<DriverLog> log = ReadDriverLog(driver_log_);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->transactions, kTransactions);
  std::vector<int64_t> ids;
  for (const auto& [id, versions] : log->by_order) ids.push_back(id);
  const std::map<int64_t, std::optional<OrderState>> database = DatabaseState(ids);
  ASSERT_FALSE(HasFailure());
  // The driver's last logged state of every order is the database's.
  for (const auto& [id, versions] : log->by_order) {
    ASSERT_EQ(versions.back().state, database.at(id)) << "order " << id;
  }
  const size_t deleted =
      std::count_if(database.begin(), database.end(), [](const auto& e) { return !e.second; });
  Note("PostgreSQL: ", database.size() - deleted, " orders of this run, ", deleted, " deleted");

  // (a) caught up: every order's latest version is PostgreSQL's.
  ASSERT_NO_FATAL_FAILURE(WaitUntilCaughtUp(database));
  ASSERT_NO_FATAL_FAILURE(StopAggregator());
  // (b), (c): every version is a committed state, once, in commit order.
  ASSERT_NO_FATAL_FAILURE(ExpectVersionsAreCommittedStates(*log));
  ASSERT_NO_FATAL_FAILURE(ExpectNoDeadLetters());
  ASSERT_NO_FATAL_FAILURE(NoteRedeliveries());
}

// The outbox route: the driver's outbox rows, captured by Debezium (which is
// set back and writes part of the run again), routed by order-aggregator:
// every row appears exactly once on <prefix>.outbox.event.order. Then
// shipment-service processes each event id once although every tenth event
// is on the topic twice, and a second run under a new consumer group (the
// whole topic delivered again) processes nothing new.
TEST_F(OrderServiceE2eTest, OutboxEventsOnceEachAndProcessedOnce) {
  ASSERT_NO_FATAL_FAILURE(RegisterConnector());
  ASSERT_NO_FATAL_FAILURE(StartAggregator(/*route_outbox=*/true));
  ASSERT_NO_FATAL_FAILURE(StartDriver(kOutboxTransactions, /*bulk_every=*/0));
  std::string offsets;
  ASSERT_NO_FATAL_FAILURE(WaitForDriverAt(kOutboxTransactions / 5));
  ASSERT_NO_FATAL_FAILURE(SaveOffsets(offsets));
  ASSERT_NO_FATAL_FAILURE(WaitForDriverAt(kOutboxTransactions * 3 / 5));
  ASSERT_NO_FATAL_FAILURE(ReplayFrom(offsets));
  ASSERT_NO_FATAL_FAILURE(WaitForDriver());

  absl::StatusOr<DriverLog> log = ReadDriverLog(driver_log_);
  ASSERT_TRUE(log.ok()) << log.status();
  std::vector<int64_t> ids;
  for (const auto& [id, versions] : log->by_order) ids.push_back(id);
  const std::map<std::string, OutboxRow> rows = DatabaseOutbox(ids);
  ASSERT_EQ(static_cast<int64_t>(rows.size()), log->outbox_rows);
  ASSERT_NO_FATAL_FAILURE(WaitForOutboxEvents(rows));
  ASSERT_NO_FATAL_FAILURE(StopAggregator());
  const std::vector<ConsumedRecord> events = ExpectOutboxEventsOnceEach(rows);
  ASSERT_FALSE(HasFailure());
  ASSERT_NO_FATAL_FAILURE(ExpectNoDeadLetters());
  ASSERT_NO_FATAL_FAILURE(NoteRedeliveries());

  // Every tenth event delivered twice.
  std::vector<const ConsumedRecord*> copies;
  for (size_t i = 0; i < events.size(); i += 10) copies.push_back(&events[i]);
  ASSERT_STATUS_OK(ProduceCopies(Topic("outbox.event.order"), copies));
  const int64_t copied = static_cast<int64_t>(copies.size());
  const int64_t distinct = static_cast<int64_t>(rows.size());
  const std::string state_dir = absl::StrCat(dir_, "/shipment-state");
  const std::string processed_log = absl::StrCat(dir_, "/shipment-processed.log");
  EXPECT_EQ(RunShipmentService(UniqueName("ship-a"), state_dir, processed_log),
            std::make_pair(distinct, copied));
  // A new group: the whole topic again, every event already processed.
  EXPECT_EQ(RunShipmentService(UniqueName("ship-b"), state_dir, processed_log),
            std::make_pair(int64_t{0}, distinct + copied));

  std::map<std::string, int> processed;
  std::istringstream lines(ReadTextFile(processed_log));
  for (std::string id; std::getline(lines, id);) ++processed[id];
  int twice = 0;
  for (const auto& [id, n] : processed) twice += n > 1 ? 1 : 0;
  EXPECT_EQ(twice, 0) << "event ids processed more than once";
  EXPECT_EQ(processed.size(), rows.size());
  for (const auto& [id, row] : rows) {
    ASSERT_EQ(processed.count(id), 1u) << "event " << id << " never processed";
  }
}

}  // namespace
}  // namespace tributary::testing
