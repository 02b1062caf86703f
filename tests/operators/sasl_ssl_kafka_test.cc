// order-aggregator over TLS + SASL/SCRAM-SHA-512 (label kafka), on a broker
// of the test's own (scripts/kafka on 127.0.0.1:19492.., its own scratch
// dir, never the suite's shared broker) with a second listener SASL_SSL on
// 19494: a CA and the broker's certificate made here with openssl, the
// SCRAM user written at format time by the broker's StorageTool.
//   - with the right password, order-aggregator aggregates input written
//     through the plain listener, every version complete;
//   - with a wrong one, it exits non-zero within a bound, with an
//     "authentication failed" line, and writes nothing.
// The broker is Kafka 3.9.1: Debian 12's librdkafka (2.0.2) cannot do SCRAM
// with a Kafka 4 broker (README "Security").
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/operators/pg_events.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
constexpr int kPort = 19492;  // PLAINTEXT; 19493 controller, 19494 SASL_SSL
constexpr int kSaslSslPort = kPort + 2;
constexpr char kKafkaVersion[] = "3.9.1";
constexpr char kUser[] = "tributary-app";
constexpr char kPassword[] = "correct-horse-battery";
constexpr char kKeystorePassword[] = "keystore-secret";
constexpr auto kTimeout = 90s;
// How long a wrong password may take to stop order-aggregator: the first
// authentication error ends it (librdkafka's first attempt takes < 1 s).
constexpr auto kAuthFailureBound = 30s;

class SaslSslKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("sasl_ssl_kafka_test", "sasl");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    ASSERT_NO_FATAL_FAILURE(MakeCertificates());
    OwnBroker::Options options;
    options.port = kPort;
    options.dir = dir_.path() + "/kafka";
    options.log_dir = dir_.path();
    options.env = {absl::StrCat("TRIBUTARY_KAFKA_VERSION=", kKafkaVersion),
                   absl::StrCat("TRIBUTARY_KAFKA_SASL_SSL_PORT=", kSaslSslPort),
                   absl::StrCat("TRIBUTARY_KAFKA_SSL_KEYSTORE=", dir_.path(), "/broker.p12"),
                   absl::StrCat("TRIBUTARY_KAFKA_SSL_KEYSTORE_PASSWORD=", kKeystorePassword),
                   absl::StrCat("TRIBUTARY_KAFKA_SCRAM_USERS=", kUser, "=", kPassword)};
    absl::StatusOr<std::unique_ptr<OwnBroker>> broker = OwnBroker::Start(std::move(options));
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    // kafka_fixture's helpers (topics, producer, readers) use the plain listener.
    setenv("TRIBUTARY_BOOTSTRAP", broker_->bootstrap_servers().c_str(), 1);
    ASSERT_STATUS_OK(CheckBrokerReachable(30000));
  }

  void TearDown() override {
    child_.process.reset();  // SIGKILLs a run still going
    if (broker_ != nullptr) {
      const absl::Status stopped = broker_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
    dir_.Finish(HasFailure(), "certificates, broker and order-aggregator logs");
  }

  // Runs one openssl command in the scratch dir; fails unless it exits 0.
  void OpenSsl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/env", "-C", dir_.path(), "openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log = dir_.path() + "/openssl.log";
    absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(argv, log);
    ASSERT_TRUE(child.ok()) << child.status();
    absl::StatusOr<int> status = (*child)->Wait(60s);
    ASSERT_TRUE(status.ok()) << status.status();
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "openssl " << args.front() << " " << DescribeWaitStatus(*status) << "\n"
        << TailOfFile(log);
  }

  // ca.pem (the CA clients trust), broker.p12 (the broker's key and its
  // certificate for 127.0.0.1, signed by the CA, in a PKCS12 keystore).
  void MakeCertificates() {
    ASSERT_NO_FATAL_FAILURE(OpenSsl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                                     "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
                                     "/CN=tributary test CA"}));
    ASSERT_NO_FATAL_FAILURE(OpenSsl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                                     "broker.key", "-out", "broker.csr", "-subj",
                                     "/CN=127.0.0.1"}));
    {
      std::ofstream ext(dir_.path() + "/broker.ext");
      ext << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
      ASSERT_TRUE(ext.flush());
    }
    ASSERT_NO_FATAL_FAILURE(OpenSsl({"x509", "-req", "-in", "broker.csr", "-CA", "ca.pem",
                                     "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                                     "-extfile", "broker.ext", "-out", "broker.pem"}));
    ASSERT_NO_FATAL_FAILURE(OpenSsl({"pkcs12", "-export", "-in", "broker.pem", "-inkey",
                                     "broker.key", "-certfile", "ca.pem", "-name", "broker",
                                     "-out", "broker.p12", "-passout",
                                     absl::StrCat("pass:", kKeystorePassword)}));
  }

  // Topics and input for one application, and its config: SASL_SSL to
  // 19494 with `password`, ssl.ca.location the test's CA.
  void Prepare(const std::string& prefix, const std::string& password) {
    child_ = ChildApp();
    child_.name = prefix;
    child_.state_dir = dir_.path() + "/state-" + prefix;
    child_.config_path = dir_.path() + "/" + prefix + ".properties";
    absl::StatusOr<OrderAggregatorTopics> topics = OrderAggregatorTopics::Create(
        UniqueName(prefix), child_,
        absl::StrCat("bootstrap.servers=127.0.0.1:", kSaslSslPort, "\n",
                     "security.protocol=SASL_SSL\n",
                     "sasl.mechanism=SCRAM-SHA-512\n",
                     "sasl.username=", kUser, "\n",
                     "sasl.password=", password, "\n",
                     "ssl.ca.location=", dir_.path(), "/ca.pem\n"));
    ASSERT_TRUE(topics.ok()) << topics.status();
    topics_ = *std::move(topics);
    // T100: order 1 with lines 11 and 12; T101: order 2 with line 21;
    // T102: order 1 shipped.
    PgEvents pg;
    ASSERT_STATUS_OK(ProduceRecords(topics_.orders, {{Key(1), pg.Order('c', 1, "PLACED", 100)}}));
    ASSERT_STATUS_OK(ProduceRecords(topics_.lines, {{Key(11), pg.Line('c', 11, 1, "a", 100)},
                                                    {Key(12), pg.Line('c', 12, 1, "b", 100)}}));
    ASSERT_STATUS_OK(ProduceRecords(topics_.tx, {{"100", pg.End(100, 1, 2)}}));
    pg.NewTransaction();
    ASSERT_STATUS_OK(ProduceRecords(topics_.orders, {{Key(2), pg.Order('c', 2, "PLACED", 101)}}));
    ASSERT_STATUS_OK(ProduceRecords(topics_.lines, {{Key(21), pg.Line('c', 21, 2, "c", 101)}}));
    ASSERT_STATUS_OK(ProduceRecords(topics_.tx, {{"101", pg.End(101, 1, 1)}}));
    pg.NewTransaction();
    ASSERT_STATUS_OK(ProduceRecords(topics_.orders, {{Key(1), pg.Order('u', 1, "SHIPPED", 102)}}));
    ASSERT_STATUS_OK(ProduceRecords(topics_.tx, {{"102", pg.End(102, 1, 0)}}));
  }

  static std::string Key(int id) { return absl::StrCat(R"({"id":)", id, "}"); }

  ScratchDir dir_;
  std::unique_ptr<OwnBroker> broker_;
  ChildApp child_;
  OrderAggregatorTopics topics_;
};

TEST_F(SaslSslKafkaTest, AggregatesThroughSaslSslAndStopsOnAWrongPassword) {
  // --- the right password: every version, complete ---
  ASSERT_NO_FATAL_FAILURE(Prepare("sasl-ok", kPassword));
  ASSERT_STATUS_OK(child_.Start(dir_.path(), {kOrderAggregator, "--config", child_.config_path}));
  absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(topics_.output, 1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while ((*reader)->size() < 3 && std::chrono::steady_clock::now() < deadline &&
         !child_.Died()) {
    ASSERT_STATUS_OK((*reader)->Poll(100ms));
  }
  ASSERT_EQ((*reader)->size(), 3u) << "versions read within " << kTimeout.count() << " s\n"
                                   << child_.LogTails();
  const std::vector<ConsumedRecord>& out = (*reader)->records();
  EXPECT_EQ(out[0].key, "1");
  EXPECT_TRUE(absl::StrContains(out[0].value.value_or(""), R"("id":11)")) << *out[0].value;
  EXPECT_TRUE(absl::StrContains(out[0].value.value_or(""), R"("id":12)")) << *out[0].value;
  EXPECT_EQ(out[1].key, "2");
  EXPECT_TRUE(absl::StrContains(out[1].value.value_or(""), R"("id":21)")) << *out[1].value;
  EXPECT_EQ(out[2].key, "1");
  EXPECT_TRUE(absl::StrContains(out[2].value.value_or(""), R"("status":"SHIPPED")"))
      << *out[2].value;
  EXPECT_TRUE(absl::StrContains(out[2].value.value_or(""), R"("id":12)")) << *out[2].value;
  for (const ConsumedRecord& r : out) {
    EXPECT_FALSE(absl::StrContains(r.value.value_or(""), "partial")) << *r.value;
  }
  ASSERT_STATUS_OK(child_.Stop(60s));
  // The effective-config log line masks the password.
  EXPECT_FALSE(absl::StrContains(ReadTextFile(child_.logs.back()), kPassword));

  // --- a wrong password: a clear error, a non-zero exit, nothing written ---
  ASSERT_NO_FATAL_FAILURE(Prepare("sasl-wrong", "not-the-password"));
  ASSERT_STATUS_OK(child_.Start(dir_.path(), {kOrderAggregator, "--config", child_.config_path}));
  absl::StatusOr<int> status = child_.process->Wait(kAuthFailureBound);
  ASSERT_TRUE(status.ok()) << "order-aggregator still runs " << kAuthFailureBound.count()
                           << " s after starting with a wrong password: " << status.status()
                           << "\n" << child_.LogTails();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0)
      << DescribeWaitStatus(*status) << "\n" << child_.LogTails();
  const std::string log = ReadTextFile(child_.logs.back());
  EXPECT_TRUE(absl::StrContains(log, "cannot start: UNAUTHENTICATED: authentication failed"))
      << log;
  EXPECT_TRUE(absl::StrContains(log, "check sasl.username, sasl.password")) << log;
  EXPECT_FALSE(absl::StrContains(log, "not-the-password")) << log;
  absl::StatusOr<std::vector<ConsumedRecord>> written = ReadWholeTopic(topics_.output, 1);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_TRUE(written->empty()) << written->size() << " records on " << topics_.output;
  absl::StatusOr<std::map<std::string, int>> topics = TopicPartitionCounts();
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_EQ(topics->count(topics_.dead_letters), 0u) << "no topic was created";
}

}  // namespace
}  // namespace tributary::testing
