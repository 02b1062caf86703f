// Interactive queries of one KafkaStreams instance on the embedded mock
// cluster (no broker): a processor keeps the last value of each key in a
// store, a query reads it. The key's task and owner (this instance), the
// local read on the stream thread, and the query endpoint's answers: 200,
// 404, 400 for an id the query's parser refuses, 401 without the token.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/internal/http_server.h"
#include "engine/internal/record_collector.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr int kPartitions = 3;

class LastValue : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    store_ = context.GetStateStore("last");
    return store_ != nullptr ? absl::OkStatus() : absl::InternalError("no store");
  }
  absl::Status Process(const Record& record) override {
    if (!record.key || !record.value) return absl::OkStatus();
    return store_->Put(*record.key, *record.value);
  }

 private:
  KeyValueStore* store_ = nullptr;
};

QuerySpec LastQuery() {
  QuerySpec query;
  query.name = "last";
  query.store = "last";
  query.key = [](std::string_view id) -> absl::StatusOr<std::string> {
    if (id.empty() || id[0] != 'k') return absl::InvalidArgumentError("keys start with 'k'");
    return std::string(id);
  };
  query.run = [](const std::function<KeyValueStore*(std::string_view)>& stores,
                 std::string_view key) { return stores("last")->Get(key); };
  return query;
}

template <typename Condition>
bool WaitFor(Condition condition, std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);  // the next look
  }
  return true;
}

TEST(QueriesTest, OneInstanceAnswersEveryKeyFromItsTasks) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("queries_test-", getpid())).string();
  Topology topology;
  topology.AddSource("in", {"input"})
      .AddProcessor("last", [] { return std::make_unique<LastValue>(); }, {"in"})
      .AddStateStore({"last"}, {"last"})
      .AddQuery(LastQuery());
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
      {"application.id", "queries-test"},
      {"state.dir", dir},
      {"query.port", "0"},
      {"query.token", "tok"},
  });
  ASSERT_TRUE(config.ok()) << config.status();
  auto streams = KafkaStreams::Open(std::move(topology), *std::move(config));
  ASSERT_TRUE(streams.ok()) << streams.status();
  KafkaStreams& app = **streams;
  ASSERT_TRUE(app.mock_cluster()->CreateTopic("input", kPartitions).ok());
  EXPECT_EQ(app.query_port(), -1) << "before Start";
  EXPECT_TRUE(absl::IsUnavailable(app.QueryLocal("last", "k1").status())) << "not started";
  ASSERT_TRUE(app.Start().ok());
  ASSERT_GT(app.query_port(), 0);
  EXPECT_EQ(app.application_server(), absl::StrCat("127.0.0.1:", app.query_port()));

  auto producer = KafkaProducer::Open({{"bootstrap.servers", app.bootstrap_servers()}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("k", i);
    ASSERT_TRUE((*producer)
                    ->Send("input", KafkaProducer::DefaultPartition(key, kPartitions), key,
                           absl::StrCat("v", i))
                    .ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("k", i);
    SCOPED_TRACE(key);
    absl::StatusOr<KafkaStreams::KeyQueryMetadata> metadata;
    ASSERT_TRUE(WaitFor([&] {
      metadata = app.QueryMetadataForKey("last", key);
      return metadata.ok();
    })) << metadata.status();
    EXPECT_TRUE(metadata->local);
    EXPECT_EQ(metadata->server, app.application_server());
    EXPECT_EQ(metadata->task.partition, internal::DefaultPartition(key, kPartitions));
    absl::StatusOr<std::optional<std::string>> value;
    EXPECT_TRUE(WaitFor([&] {
      value = app.QueryLocal("last", key);
      return value.ok() && value->has_value();
    })) << value.status();
    EXPECT_EQ(value.value_or(std::nullopt), absl::StrCat("v", i));
  }
  EXPECT_EQ(*app.QueryLocal("last", "k-none"), std::nullopt);
  EXPECT_TRUE(absl::IsNotFound(app.QueryLocal("nope", "k1").status()));

  const std::string server = app.application_server();
  const std::vector<std::pair<std::string, std::string>> auth = {{"Authorization", "Bearer tok"}};
  auto get = [&](const std::string& path, const auto& headers) {
    absl::StatusOr<internal::HttpResponse> response =
        internal::HttpGet(server, path, headers, absl::Seconds(10));
    EXPECT_TRUE(response.ok()) << response.status();
    return response.value_or(internal::HttpResponse{});
  };
  internal::HttpResponse found = get("/last/k7", auth);
  EXPECT_EQ(found.status, 200);
  EXPECT_EQ(found.body, "v7");
  EXPECT_EQ(found.content_type, "application/json");
  EXPECT_EQ(found.Header("X-Tributary-Instance"), server);
  EXPECT_EQ(get("/last/k-none", auth).status, 404);
  internal::HttpResponse bad = get("/last/x1", auth);
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("keys start with 'k'"));
  using Headers = std::vector<std::pair<std::string, std::string>>;
  internal::HttpResponse anonymous = get("/last/k7", Headers{});
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.Header("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(anonymous.body.find("v7"), std::string::npos);
  EXPECT_EQ(get("/last/k7", Headers{{"Authorization", "Bearer tok2"}}).status, 401);
  EXPECT_EQ(get("/other/k7", auth).status, 404) << "no such query";

  EXPECT_TRUE(app.Close().ok());
  EXPECT_EQ(app.query_port(), -1) << "closed";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tributary
