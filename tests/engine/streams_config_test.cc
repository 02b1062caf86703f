#include "engine/streams_config.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Writes `text` to a fresh file under the test temp dir and returns its path.
std::string WriteFile(const std::string& text) {
  static int counter = 0;
  std::string path = absl::StrCat(
      ::testing::TempDir(), "/streams_config_test_",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
      counter++, ".properties");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return path;
}

std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

TEST(StreamsConfigTest, DefaultsUnderExactlyOnce) {
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromMap({{"application.id", "app"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->application_id(), "app");
  EXPECT_EQ(config->bootstrap_servers(), "");
  EXPECT_TRUE(config->uses_mock_cluster());
  EXPECT_EQ(config->mock_cluster_brokers(), 1);
  EXPECT_TRUE(config->exactly_once());
  EXPECT_EQ(config->num_stream_threads(), 1);
  EXPECT_EQ(config->commit_interval(), absl::Milliseconds(100));
  EXPECT_EQ(config->state_dir(), "/tmp/tributary-streams");
  EXPECT_EQ(config->cache_max_bytes(), 10 << 20) << "Kafka Streams' default";
  EXPECT_EQ(config->rocksdb_block_cache_bytes(), 64 << 20);
  EXPECT_EQ(config->replication_factor(), 1);
  EXPECT_EQ(config->processing_error_policy(), ErrorPolicy::kFail);
  EXPECT_EQ(config->dead_letter_topic(), "app-dlq");
  EXPECT_EQ(config->dead_letter_topic_partitions(), 1);
  EXPECT_EQ(config->poll_interval(), absl::Milliseconds(100));
  EXPECT_EQ(config->max_poll_records(), 1000);
  EXPECT_EQ(config->state_cleanup_delay(), absl::Minutes(10));
  EXPECT_EQ(config->repartition_purge_interval(), absl::Seconds(30)) << "Kafka Streams' default";
  EXPECT_EQ(config->num_standby_replicas(), 0);
  EXPECT_EQ(config->metrics_recording_level(), "INFO");
  EXPECT_FALSE(config->rocksdb_wal_enabled());
  EXPECT_EQ(config->transaction_timeout(), absl::Seconds(10));
  EXPECT_EQ(config->log_level(), "info");
  EXPECT_EQ(config->metrics_port(), std::nullopt);
  EXPECT_EQ(config->metrics_host(), "127.0.0.1");
  EXPECT_EQ(config->query_port(), std::nullopt);
  EXPECT_EQ(config->query_host(), "127.0.0.1");
  EXPECT_EQ(config->application_server(), "");
  EXPECT_EQ(config->query_token(), "");
  EXPECT_TRUE(config->ConsumerSettings().empty());
  EXPECT_EQ(*config->GetString("dead.letter.topic"), "app-dlq");
  EXPECT_EQ(*config->GetInt("commit.interval.ms"), 100);
  EXPECT_FALSE(*config->GetBool("rocksdb.wal.enabled"));
}

TEST(StreamsConfigTest, DefaultsUnderAtLeastOnce) {
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap(
      {{"application.id", "app"}, {"processing.guarantee", "at_least_once"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->exactly_once());
  EXPECT_EQ(config->commit_interval(), absl::Seconds(30));
  EXPECT_TRUE(config->rocksdb_wal_enabled());
}

TEST(StreamsConfigTest, ParsesPropertiesSyntax) {
  std::string path = WriteFile(
      "# a comment\n"
      "! another comment\n"
      "\n"
      "   application.id   =   orders-app   \n"
      "bootstrap.servers: broker1:9092,\\\n"
      "                   broker2:9092\n"
      "num.stream.threads 3\r\n"
      "state.dir=/var/lib/tributary\\\n"
      "\n"
      "  # indented comment\n"
      "processing.guarantee=at_least_once\n"
      "commit.interval.ms=250\n"
      "dead.letter.topic = orders\\u002Ddlq\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->application_id(), "orders-app");
  EXPECT_EQ(config->bootstrap_servers(), "broker1:9092,broker2:9092");
  EXPECT_FALSE(config->uses_mock_cluster());
  EXPECT_EQ(config->num_stream_threads(), 3);
  // The continuation joined an empty line: the value ends there.
  EXPECT_EQ(config->state_dir(), "/var/lib/tributary");
  EXPECT_FALSE(config->exactly_once());
  EXPECT_EQ(config->commit_interval(), absl::Milliseconds(250));
  EXPECT_EQ(config->dead_letter_topic(), "orders-dlq");
}

TEST(StreamsConfigTest, LaterLineWins) {
  std::string path = WriteFile(
      "application.id=a\nnum.stream.threads=2\nnum.stream.threads=4\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_stream_threads(), 4);
}

TEST(StreamsConfigTest, LineWithoutKeyNamesFileAndLine) {
  std::string path = WriteFile("application.id=a\n\n   = value\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":3")));
  EXPECT_THAT(Message(config.status()), HasSubstr("without a key"));
}

TEST(StreamsConfigTest, MissingFileIsNotFound) {
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(
      ::testing::TempDir() + "/no/such/file.properties");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(config.status()), HasSubstr("no/such/file.properties"));
}

TEST(StreamsConfigTest, MissingApplicationIdNamesKeyAndFile) {
  std::string path = WriteFile("num.stream.threads=2\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr("'application.id'"));
  EXPECT_THAT(Message(config.status()), HasSubstr(path));
}

TEST(StreamsConfigTest, UnknownKeySuggestsClosest) {
  std::string path = WriteFile("application.id=a\nnum.stream.thread=2\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(Message(config.status()),
            absl::StrCat("unknown config key 'num.stream.thread' in ", path,
                         ":2 (did you mean 'num.stream.threads'?)"));

  config = StreamsConfig::FromMap(
      {{"application.id", "a"}, {"completely.different", "1"}});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(Message(config.status()),
            "unknown config key 'completely.different'");
}

struct BadValue {
  std::string key;
  std::string value;
  std::string reason;  // expected in the message
};

TEST(StreamsConfigTest, EveryValidationErrorNamesKeyAndFileLine) {
  const std::vector<BadValue> cases = {
      {"application.id", "bad id!", "letters, digits"},
      {"bootstrap.servers", "a:9092,,b:9092", "host:port"},
      {"bootstrap.servers", "mock://x", "mock://N"},
      {"processing.guarantee", "exactly_once", "use 'exactly_once_v2'"},
      {"processing.guarantee", "exactly_once_beta", "use 'exactly_once_v2'"},
      {"processing.guarantee", "sometimes", "at_least_once"},
      {"num.stream.threads", "0", "integer in [1, 1024]"},
      {"num.stream.threads", "two", "integer"},
      {"commit.interval.ms", "-5", "integer"},
      {"state.dir", "", "non-empty"},
      {"cache.max.bytes", "lots", "integer"},
      {"cache.max.bytes", "-1", "integer"},
      {"rocksdb.block.cache.bytes", "1024", "integer in [1048576, "},
      {"replication.factor", "0", "-1"},
      {"num.standby.replicas", "-1", "integer in [0, 1024]"},
      {"processing.error.policy", "skip", "'fail' or 'continue'"},
      {"dead.letter.topic", "bad topic", "topic name"},
      {"dead.letter.topic.partitions", "0", "integer"},
      {"poll.ms", "1.5", "integer"},
      {"max.poll.records", "0", "integer"},
      {"state.cleanup.delay.ms", "-1", "integer"},
      {"repartition.purge.interval.ms", "-1", "integer"},
      {"metrics.recording.level", "TRACE", "'INFO' is the only level"},
      {"metrics.recording.level", "DEBUG", "no DEBUG or TRACE metrics"},
      {"metrics.recording.level", "LOUD", "expected 'INFO'"},
      {"rocksdb.wal.enabled", "yes", "'true' or 'false'"},
      {"transaction.timeout.ms", "10", "integer"},
      {"log.level", "verbose", "spdlog level"},
      {"metrics.port", "65536", "integer in [-1, 65535]"},
      {"metrics.port", "-2", "integer in [-1, 65535]"},
      {"metrics.port", "http", "integer"},
      {"metrics.host", "", "address to bind"},
      {"metrics.host", "http://0.0.0.0", "without port or scheme"},
      {"query.port", "65536", "integer in [-1, 65535]"},
      {"query.port", "any", "integer"},
      {"query.host", "", "address to bind"},
      {"query.host", "http://10.0.0.1", "without port or scheme"},
      {"application.server", "host", "expected host:port"},
      {"application.server", "host:0", "expected host:port"},
      {"application.server", "http://host:80", "without scheme"},
      {"application.server", ":80", "expected host:port"},
      {"application.server", "a@b:80", "expected host:port"},
      {"query.token", "two words", "without spaces"},
  };
  for (const BadValue& c : cases) {
    SCOPED_TRACE(c.key + "=" + c.value);
    std::string path = WriteFile(absl::StrCat("application.id=app\n# comment\n",
                                              c.key, "=", c.value, "\n"));
    absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    // application.id's own error is on line 3 too: the later line is checked.
    EXPECT_THAT(Message(config.status()),
                HasSubstr(absl::StrCat("'", c.key, "'")));
    EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":3")));
    EXPECT_THAT(Message(config.status()), HasSubstr(c.reason));
  }
}

TEST(StreamsConfigTest, CommitIntervalMustFitTransactionTimeoutUnderEos) {
  std::string path = WriteFile("application.id=a\ncommit.interval.ms=15000\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr("'commit.interval.ms'"));
  EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":2")));
  EXPECT_THAT(Message(config.status()), HasSubstr("transaction.timeout.ms"));

  path = WriteFile(
      "application.id=a\ncommit.interval.ms=15000\n"
      "transaction.timeout.ms=60000\n");
  EXPECT_TRUE(StreamsConfig::FromFile(path).ok());
  path = WriteFile(
      "application.id=a\ncommit.interval.ms=15000\n"
      "processing.guarantee=at_least_once\n");
  EXPECT_TRUE(StreamsConfig::FromFile(path).ok());
}

TEST(StreamsConfigTest, PassThroughKeysAreAcceptedAndMerged) {
  std::string path = WriteFile(
      "application.id=a\n"
      "consumer.fetch.min.bytes=1\n"
      "consumer.auto.offset.reset=earliest\n"
      "main.consumer.fetch.min.bytes=2\n"
      "restore.consumer.fetch.min.bytes=3\n"
      "producer.linger.ms=5\n"
      "producer.compression.type=lz4\n"
      "admin.socket.timeout.ms=1000\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  using Settings = std::map<std::string, std::string>;
  EXPECT_EQ(
      config->ConsumerSettings(),
      (Settings{{"fetch.min.bytes", "2"}, {"auto.offset.reset", "earliest"}}));
  EXPECT_EQ(
      config->RestoreConsumerSettings(),
      (Settings{{"fetch.min.bytes", "3"}, {"auto.offset.reset", "earliest"}}));
  EXPECT_EQ(config->ProducerSettings(),
            (Settings{{"linger.ms", "5"}, {"compression.type", "lz4"}}));
  EXPECT_EQ(config->AdminSettings(), (Settings{{"socket.timeout.ms", "1000"}}));
  EXPECT_EQ(*config->GetString("producer.linger.ms"), "5");
  EXPECT_EQ(*config->GetInt("producer.linger.ms"), 5);
  EXPECT_EQ(config->GetString("producer.acks").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(StreamsConfigTest, BadLibrdkafkaSettingFailsWithLibrdkafkaMessage) {
  std::string path =
      WriteFile("application.id=a\nconsumer.no.such.property=1\n");
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()),
              HasSubstr("'consumer.no.such.property'"));
  EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":2")));
  EXPECT_THAT(Message(config.status()),
              HasSubstr("No such configuration property"));

  path = WriteFile("application.id=a\n\nproducer.linger.ms=soon\n");
  config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr("'producer.linger.ms'"));
  EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":3")));
  EXPECT_THAT(Message(config.status()), HasSubstr("librdkafka: Invalid value"));

  config =
      StreamsConfig::FromMap({{"application.id", "a"}, {"consumer.", "1"}});
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr("'consumer.'"));
}

TEST(StreamsConfigTest, EngineOwnedKeysAreRejected) {
  for (std::string key :
       {"consumer.enable.auto.commit", "consumer.group.id",
        "consumer.isolation.level", "main.consumer.group.id",
        "restore.consumer.enable.auto.offset.store",
        "producer.transactional.id", "producer.enable.idempotence",
        "producer.transaction.timeout.ms", "admin.bootstrap.servers",
        "producer.metadata.broker.list"}) {
    SCOPED_TRACE(key);
    std::string path =
        WriteFile(absl::StrCat("application.id=a\n", key, "=x\n"));
    absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(Message(config.status()),
                HasSubstr(absl::StrCat("'", key, "'")));
    EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":2")));
    EXPECT_THAT(Message(config.status()), HasSubstr("managed by the engine"));
  }
}

TEST(StreamsConfigTest, ApplicationKeys) {
  const AppKeys app_keys = {
      {"orders.topic", "dbserver1.inventory.purchaseorder"},
      {"orders.window.ms", "60000"},
      {"orders.emit.partial", "false"}};
  std::string path = WriteFile("application.id=a\norders.window.ms = 1000\n");
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromFile(path, app_keys);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config->GetString("orders.topic"),
            "dbserver1.inventory.purchaseorder");
  EXPECT_EQ(*config->GetInt("orders.window.ms"), 1000);
  EXPECT_FALSE(*config->GetBool("orders.emit.partial"));
  absl::StatusOr<int64_t> not_int = config->GetInt("orders.topic");
  ASSERT_FALSE(not_int.ok());
  EXPECT_THAT(Message(not_int.status()), HasSubstr("'orders.topic'"));
  EXPECT_THAT(config->ToString(),
              HasSubstr("orders.topic = dbserver1.inventory.purchaseorder"));

  // Without the declaration the same file fails, and a near miss is suggested.
  config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()),
              HasSubstr(absl::StrCat(
                  "unknown config key 'orders.window.ms' in ", path, ":2")));
  config = StreamsConfig::FromMap(
      {{"application.id", "a"}, {"orders.topik", "x"}}, app_keys);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()),
              HasSubstr("did you mean 'orders.topic'"));

  // An application key may not shadow an engine key or a pass-through prefix.
  EXPECT_FALSE(
      StreamsConfig::FromMap({{"application.id", "a"}}, {{"state.dir", "x"}})
          .ok());
  EXPECT_FALSE(StreamsConfig::FromMap({{"application.id", "a"}},
                                      {{"consumer.topic", "x"}})
                   .ok());
}

TEST(StreamsConfigTest, MockClusterDetection) {
  auto with_servers = [](const std::string& servers) {
    return StreamsConfig::FromMap(
        {{"application.id", "a"}, {"bootstrap.servers", servers}});
  };
  absl::StatusOr<StreamsConfig> config = with_servers("mock://");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->uses_mock_cluster());
  EXPECT_EQ(config->mock_cluster_brokers(), 1);
  config = with_servers("mock://3");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->uses_mock_cluster());
  EXPECT_EQ(config->mock_cluster_brokers(), 3);
  config = with_servers("");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->uses_mock_cluster());
  config = with_servers("localhost:9092");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->uses_mock_cluster());
  EXPECT_EQ(config->bootstrap_servers(), "localhost:9092");
  EXPECT_FALSE(with_servers("mock://0").ok());
}

TEST(StreamsConfigTest, AliasKeys) {
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap(
      {{"application.id", "a"},
       {"cache.max.bytes.buffering", "1024"},
       {"default.deserialization.exception.handler",
        "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cache_max_bytes(), 1024);
  EXPECT_EQ(*config->GetInt("cache.max.bytes.buffering"), 1024);
  EXPECT_EQ(config->rocksdb_block_cache_bytes(), 64 << 20)
      << "the record cache and RocksDB's block cache are separate budgets";
  EXPECT_EQ(config->processing_error_policy(), ErrorPolicy::kContinue);

  config =
      StreamsConfig::FromMap({{"application.id", "a"},
                              {"statestore.cache.max.bytes", "2048"},
                              {"processing.exception.handler", "continue"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cache_max_bytes(), 2048);
  EXPECT_EQ(*config->GetString("processing.error.policy"), "continue");

  std::string path =
      WriteFile("application.id=a\nstatestore.cache.max.bytes=big\n");
  config = StreamsConfig::FromFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(
      Message(config.status()),
      HasSubstr("'statestore.cache.max.bytes' (alias of 'cache.max.bytes')"));
  EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":2")));
}

TEST(StreamsConfigTest, RecordCacheAndBlockCacheAreSeparateKeys) {
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromMap({{"application.id", "a"},
                              {"cache.max.bytes", "0"},
                              {"rocksdb.block.cache.bytes", "134217728"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cache_max_bytes(), 0) << "0 disables the record cache";
  EXPECT_EQ(config->rocksdb_block_cache_bytes(), 128 << 20);
  EXPECT_EQ(*config->GetInt("statestore.cache.max.bytes"), 0);
}

TEST(StreamsConfigTest, ToStringMasksSecrets) {
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromMap({{"application.id", "app"},
                              {"producer.sasl.username", "alice"},
                              {"producer.sasl.password", "hunter2"},
                              {"consumer.ssl.key.password", "open-sesame"},
                              {"producer.ssl.key.pem", "-----BEGIN PRIVATE KEY-----"}});
  ASSERT_TRUE(config.ok()) << config.status();
  std::string text = config->ToString();
  EXPECT_THAT(text, HasSubstr("application.id = app\n"));
  EXPECT_THAT(text, HasSubstr("commit.interval.ms = 100\n"));
  EXPECT_THAT(text, HasSubstr("dead.letter.topic = app-dlq\n"));
  EXPECT_THAT(text, HasSubstr("producer.sasl.password = ********\n"));
  EXPECT_THAT(text, HasSubstr("producer.sasl.username = ********\n"));
  EXPECT_THAT(text, HasSubstr("consumer.ssl.key.password = ********\n"));
  EXPECT_THAT(text, HasSubstr("producer.ssl.key.pem = ********\n"));
  EXPECT_THAT(text, Not(HasSubstr("hunter2")));
  EXPECT_THAT(text, Not(HasSubstr("alice")));
  EXPECT_THAT(text, Not(HasSubstr("open-sesame")));
  // The real values still reach librdkafka.
  EXPECT_EQ(config->ProducerSettings().at("sasl.password"), "hunter2");
}

TEST(StreamsConfigTest, SecurityKeysWithoutPrefixReachEveryClient) {
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromMap({{"application.id", "app"},
                              {"security.protocol", "SASL_SSL"},
                              {"sasl.mechanism", "SCRAM-SHA-512"},
                              {"sasl.username", "alice"},
                              {"sasl.password", "hunter2"},
                              {"ssl.ca.location", "/etc/tributary/ca.pem"},
                              {"producer.sasl.username", "alice-producer"}});
  ASSERT_TRUE(config.ok()) << config.status();
  for (const auto& settings : {config->ConsumerSettings(), config->RestoreConsumerSettings(),
                               config->ProducerSettings(), config->AdminSettings()}) {
    EXPECT_EQ(settings.at("security.protocol"), "SASL_SSL");
    EXPECT_EQ(settings.at("sasl.mechanism"), "SCRAM-SHA-512");
    EXPECT_EQ(settings.at("sasl.password"), "hunter2");
    EXPECT_EQ(settings.at("ssl.ca.location"), "/etc/tributary/ca.pem");
  }
  EXPECT_EQ(config->ConsumerSettings().at("sasl.username"), "alice");
  EXPECT_EQ(config->ProducerSettings().at("sasl.username"), "alice-producer")
      << "a prefixed key overrides the shared one";
  const std::string text = config->ToString();
  EXPECT_THAT(text, HasSubstr("sasl.password = ********\n"));
  EXPECT_THAT(text, HasSubstr("security.protocol = SASL_SSL\n"));
  EXPECT_THAT(text, Not(HasSubstr("hunter2")));

  absl::StatusOr<StreamsConfig> bad =
      StreamsConfig::FromMap({{"application.id", "app"}, {"ssl.no.such.thing", "1"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("invalid config key 'ssl.no.such.thing'"));
  absl::StatusOr<StreamsConfig> protocol =
      StreamsConfig::FromMap({{"application.id", "app"}, {"security.protocol", "TLS"}});
  ASSERT_FALSE(protocol.ok());
  EXPECT_THAT(protocol.status().message(), HasSubstr("'security.protocol'"));
}

TEST(StreamsConfigTest, SetValidatesAndLeavesConfigUnchangedOnError) {
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromMap({{"application.id", "a"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->Set("num.stream.threads", "4").ok());
  EXPECT_EQ(config->num_stream_threads(), 4);

  absl::Status status = config->Set("num.stream.threads", "many");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("'num.stream.threads'"));
  EXPECT_EQ(config->num_stream_threads(), 4);

  // Valid alone, but longer than the transaction timeout under EOS.
  EXPECT_FALSE(config->Set("commit.interval.ms", "20000").ok());
  EXPECT_EQ(config->commit_interval(), absl::Milliseconds(100));

  EXPECT_TRUE(config->Set("producer.linger.ms", "7").ok());
  EXPECT_EQ(config->ProducerSettings().at("linger.ms"), "7");
  EXPECT_FALSE(config->Set("bogus", "1").ok());
  EXPECT_EQ(config->GetString("bogus").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(StreamsConfigTest, MetricsEndpointKeys) {
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromProperties(
      "application.id=app\nmetrics.port=0\nmetrics.host=0.0.0.0\n", "app.properties");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics_port(), 0);
  EXPECT_EQ(config->metrics_host(), "0.0.0.0");
  ASSERT_TRUE(config->Set("metrics.port", "9464").ok());
  EXPECT_EQ(config->metrics_port(), 9464);
  ASSERT_TRUE(config->Set("metrics.port", "-1").ok());
  EXPECT_EQ(config->metrics_port(), std::nullopt);
}

TEST(StreamsConfigTest, QueryEndpointKeys) {
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromProperties(
      "application.id=app\nquery.port=0\nquery.host=0.0.0.0\n"
      "application.server=node-1.example:7070\nquery.token=s3cr3t-T0ken\n",
      "app.properties");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->query_port(), 0);
  EXPECT_EQ(config->query_host(), "0.0.0.0");
  EXPECT_EQ(config->application_server(), "node-1.example:7070");
  EXPECT_EQ(config->query_token(), "s3cr3t-T0ken");
  EXPECT_THAT(config->ToString(), Not(HasSubstr("s3cr3t-T0ken"))) << "the token is masked";
  EXPECT_THAT(config->ToString(), HasSubstr("query.token"));
  ASSERT_TRUE(config->Set("query.port", "8080").ok());
  EXPECT_EQ(config->query_port(), 8080);
}

TEST(StreamsConfigTest, QueryTokenAndApplicationServerNeedTheQueryPort) {
  for (const char* line : {"query.token=t", "application.server=h:1"}) {
    SCOPED_TRACE(line);
    std::string path = WriteFile(absl::StrCat("application.id=a\n", line, "\n"));
    absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(config.status()), HasSubstr(absl::StrCat(path, ":2")));
    EXPECT_THAT(Message(config.status()), HasSubstr("'query.port' is not"));
  }
}

// An application's own keys (order-aggregator's status.interval.ms) beside the
// endpoint's engine keys in one file.
TEST(StreamsConfigTest, MetricsKeysLoadBesideApplicationKeys) {
  std::string path = WriteFile(
      "application.id=a\nstatus.interval.ms=5000\nmetrics.port=9464\nmetrics.host=0.0.0.0\n");
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromFile(path, {{"status.interval.ms", "30000"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics_port(), 9464);
  EXPECT_EQ(config->metrics_host(), "0.0.0.0");
  EXPECT_EQ(*config->GetInt("status.interval.ms"), 5000);
}

// The same for the query endpoint's keys (order-aggregator passes its file
// to StreamsConfig as it is).
TEST(StreamsConfigTest, QueryKeysLoadBesideApplicationKeys) {
  std::string path = WriteFile(
      "application.id=a\nstatus.interval.ms=5000\nquery.port=0\nquery.token=t0k\n"
      "application.server=127.0.0.1:7070\n");
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromFile(path, {{"status.interval.ms", "30000"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->query_port(), 0);
  EXPECT_EQ(config->query_token(), "t0k");
  EXPECT_EQ(config->application_server(), "127.0.0.1:7070");
  EXPECT_EQ(*config->GetInt("status.interval.ms"), 5000);
}

}  // namespace
}  // namespace tributary
