// docs/grafana/tributary-dashboard.json cannot rot silently: it is a
// Grafana dashboard (schema ~39, a Prometheus datasource variable that every
// panel uses), and every metric name its panels' expressions use is in the
// exposition of a running order-aggregator (the topology on the embedded
// mock cluster, metrics endpoint on, one bad record fed so that every
// figure has been reported).
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/order-aggregator/order_aggregator.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "simdjson.h"
#include "tests/support/kafka_fixture.h"

namespace tributary {
namespace {

using namespace std::chrono_literals;

constexpr char kDashboard[] = DASHBOARD_PATH;

struct Dashboard {
  int64_t schema_version = 0;
  std::string datasource_variable;  // the name of the Prometheus datasource variable
  std::vector<std::string> panel_datasources;  // uid of each panel and target
  std::set<std::string> metrics;               // tributary_* names in expressions
  size_t panels = 0;
};

// The tributary_* names in a PromQL expression.
void MetricNames(std::string_view expr, std::set<std::string>& out) {
  for (size_t at = expr.find("tributary_"); at != std::string_view::npos;
       at = expr.find("tributary_", at + 1)) {
    size_t end = at;
    while (end < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[end])) ||
                                 expr[end] == '_')) {
      ++end;
    }
    out.emplace(expr.substr(at, end - at));
    at = end;
  }
}

// Fails the test (and answers true) when `error` is one.
bool Failed(simdjson::error_code error, std::string_view what) {
  if (!error) return false;
  ADD_FAILURE() << kDashboard << ": " << what << ": " << simdjson::error_message(error);
  return true;
}

Dashboard ReadDashboard() {
  namespace od = simdjson::ondemand;
  Dashboard d;
  simdjson::padded_string json;
  if (Failed(simdjson::padded_string::load(kDashboard).get(json), "read")) return d;
  od::parser parser;
  od::document root;
  if (Failed(parser.iterate(json).get(root), "parse")) return d;
  if (Failed(root["schemaVersion"].get_int64().get(d.schema_version), "schemaVersion")) return d;
  od::array variables;
  if (Failed(root["templating"]["list"].get_array().get(variables), "templating")) return d;
  for (auto element : variables) {
    od::object variable;
    if (Failed(element.get_object().get(variable), "variable")) return d;
    std::string_view type, query, name;
    if (variable["type"].get_string().get(type) || type != "datasource") continue;
    if (!variable["query"].get_string().get(query) && query == "prometheus" &&
        !variable["name"].get_string().get(name)) {
      d.datasource_variable = std::string(name);
    }
  }
  od::array panels;
  if (Failed(root["panels"].get_array().get(panels), "panels")) return d;
  for (auto element : panels) {
    od::object panel;
    if (Failed(element.get_object().get(panel), "panel")) return d;
    std::string_view type;
    if (Failed(panel["type"].get_string().get(type), "panel type")) return d;
    if (type == "row") continue;
    ++d.panels;
    std::string_view uid;
    if (Failed(panel["datasource"]["uid"].get_string().get(uid), "panel datasource")) return d;
    d.panel_datasources.emplace_back(uid);
    od::array targets;
    if (Failed(panel["targets"].get_array().get(targets), "targets")) return d;
    for (auto target_element : targets) {
      od::object target;
      if (Failed(target_element.get_object().get(target), "target")) return d;
      std::string_view expr;
      if (Failed(target["expr"].get_string().get(expr), "expr")) return d;
      MetricNames(expr, d.metrics);
      if (Failed(target["datasource"]["uid"].get_string().get(uid), "target datasource")) {
        return d;
      }
      d.panel_datasources.emplace_back(uid);
    }
  }
  return d;
}

// The series names (without labels) of a Prometheus exposition.
std::set<std::string> ExposedNames(const std::string& text) {
  std::set<std::string> names;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    names.emplace(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

TEST(GrafanaDashboardTest, IsADashboardWithAPrometheusDatasourceVariable) {
  const Dashboard d = ReadDashboard();
  EXPECT_GE(d.schema_version, 36);
  EXPECT_LE(d.schema_version, 41);
  ASSERT_FALSE(d.datasource_variable.empty()) << "no datasource variable of type prometheus";
  EXPECT_GE(d.panels, 10u);
  for (const std::string& uid : d.panel_datasources) {
    EXPECT_EQ(uid, absl::StrCat("${", d.datasource_variable, "}"));
  }
}

TEST(GrafanaDashboardTest, EveryMetricItUsesIsServedByARunningOrderAggregator) {
  const Dashboard d = ReadDashboard();
  ASSERT_GE(d.metrics.size(), 20u);

  absl::StatusOr<std::string> state = testing::MakeTempDir("grafana_dashboard_test");
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap(
      {{"application.id", "dashboard"},
       {"state.dir", *state},
       {"metrics.port", "0"},
       {"metrics.host", "127.0.0.1"}},
      order_aggregator::Keys());
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<order_aggregator::App> app = order_aggregator::Build(*config);
  ASSERT_TRUE(app.ok()) << app.status();
  absl::StatusOr<std::unique_ptr<KafkaStreams>> streams =
      KafkaStreams::Open(std::move(app->topology), *config);
  ASSERT_TRUE(streams.ok()) << streams.status();
  MockCluster* mock = (*streams)->mock_cluster();
  ASSERT_NE(mock, nullptr) << "no bootstrap.servers: the embedded mock cluster";
  std::string orders;
  for (const char* key : {"orders.topic", "lines.topic", "transaction.topic"}) {
    absl::StatusOr<std::string> topic = config->GetString(key);
    ASSERT_TRUE(topic.ok()) << topic.status();
    ASSERT_TRUE(mock->CreateTopic(*topic, 1).ok()) << *topic;
    if (orders.empty()) orders = *topic;
  }
  ASSERT_TRUE((*streams)->Start().ok());

  // One record that is not a change event: processed, dead-lettered.
  absl::StatusOr<std::unique_ptr<KafkaProducer>> producer =
      KafkaProducer::Open({{"bootstrap.servers", (*streams)->bootstrap_servers()}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)->Send(orders, 0, "{\"id\":1}", "not json").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  std::set<std::string> missing = d.metrics;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::string text;
  while (!missing.empty() && std::chrono::steady_clock::now() < deadline) {
    text = (*streams)->PrometheusMetrics();
    for (const std::string& name : ExposedNames(text)) missing.erase(name);
    if (!missing.empty()) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(missing.empty()) << "used by the dashboard, not served: "
                               << absl::StrJoin(missing, ", ") << "\n" << text;
  EXPECT_TRUE((*streams)->Close().ok());
  std::filesystem::remove_all(*state);
}

}  // namespace
}  // namespace tributary
