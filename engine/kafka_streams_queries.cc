// KafkaStreams' interactive queries (query.port): the key's task, its owner,
// the local read and the query endpoint, GET /<query>/<id>.
//
// Finding the other instances. Kafka Streams puts application.server into
// its assignor's subscription userdata, so that every member learns every
// member's address from the assignment. librdkafka (2.0.2) offers no custom
// userdata to a member, and an internal compacted topic of addresses would
// have to be kept in step with the assignment by hand. Instead each stream
// thread's group consumer carries the instance's application.server in its
// client.id ("<thread>-consumer@host:port"), and the group's description
// (DescribeConsumerGroups: each member's client.id and assignment, exactly
// what the coordinator holds) maps every partition to an address. It is
// asked for when needed and cached, and asked again after a local rebalance
// (under the eager protocol every rebalance of the group reaches every
// member) or when the cache has no usable owner for a partition, at most
// every kOwnersMinAge.
//
// The HTTP answer of a key another instance owns: this instance proxies the
// request to it, one hop (the request carries X-Tributary-Forwarded; an
// instance that gets a forwarded request for a key it does not own answers
// 503 instead of forwarding again), with the token, bounded by
// kProxyTimeout. The answering instance names itself in X-Tributary-Instance;
// a proxied answer also carries X-Tributary-Via, the instance that proxied.

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/http_server.h"
#include "engine/internal/log.h"
#include "engine/internal/stream_thread.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"

namespace tributary {
namespace {

constexpr absl::Duration kQueryTimeout = absl::Seconds(5);   // the stream thread's turn
constexpr absl::Duration kProxyTimeout = absl::Seconds(5);   // connect, and read
constexpr absl::Duration kOwnersMinAge = absl::Milliseconds(250);
constexpr int kDescribeTimeoutMs = 5000;
constexpr size_t kQueryThreads = 4;

constexpr char kInstanceHeader[] = "X-Tributary-Instance";
constexpr char kViaHeader[] = "X-Tributary-Via";
constexpr char kForwardedHeader[] = "X-Tributary-Forwarded";

internal::HttpResponse Text(int status, std::string text) {
  internal::HttpResponse response;
  response.status = status;
  response.body = std::move(text) + "\n";
  if (status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

internal::HttpResponse FromStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return Text(400, std::string(status.message()));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDeadlineExceeded:
      return Text(503, std::string(status.message()));
    case absl::StatusCode::kUnimplemented:
      return Text(501, std::string(status.message()));
    default:
      return Text(500, status.ToString());
  }
}

// RFC 3986: everything but the unreserved characters percent-encoded.
std::string EncodePathSegment(std::string_view text) {
  std::string out;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", u);
    }
  }
  return out;
}

// Compares in time independent of where they differ.
bool SameToken(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace

absl::Status KafkaStreams::StartQueryEndpoint() {
  const std::optional<int> port = config_.query_port();
  if (!port) return absl::OkStatus();
  internal::HttpServerOptions options;
  options.what = "query endpoint";
  options.keys = "query.host, query.port";
  options.host = config_.query_host();
  options.port = *port;
  options.threads = kQueryThreads;
  for (const auto& [name, query] : topology_.queries()) {
    const QuerySpec* spec = &query;  // the topology outlives the server
    options.routes.push_back({absl::StrCat("/", name, "/(.+)"),
                              [this, spec](const internal::HttpRequest& request) {
                                return AnswerQuery(*spec, request);
                              }});
  }
  TRIBUTARY_ASSIGN_OR_RETURN(query_server_, internal::HttpServer::Start(std::move(options)));
  application_server_ = config_.application_server();
  if (application_server_.empty()) {
    application_server_ = absl::StrCat(config_.query_host(), ":", query_server_->port());
  }
  if (config_.query_host() != "127.0.0.1" && config_.query_host() != "localhost" &&
      config_.query_host() != "::1" && config_.query_token().empty()) {
    internal::EngineLogger()->warn(
        "query endpoint on {} without query.token: anyone who reaches it reads the state",
        config_.query_host());
  }
  if (topology_.queries().empty()) {
    internal::EngineLogger()->warn("query endpoint: the topology registers no query");
  }
  return absl::OkStatus();
}

int KafkaStreams::query_port() const {
  return query_server_ != nullptr ? query_server_->port() : -1;
}

absl::Status KafkaStreams::RefreshOwners(uint64_t rebalances) {
  owners_fetched_ = absl::Now();
  owners_.clear();
  owners_problem_.clear();
  if (mock_cluster_ != nullptr) {
    // Against librdkafka 2.0.2's mock cluster, an admin client that had
    // described the group hung in rd_kafka_destroy (seen in queries_test). An
    // embedded instance has no other instances to ask about anyway.
    owners_problem_ = "the embedded mock cluster has no other instances to ask";
    return absl::OkStatus();
  }
  if (owners_admin_ == nullptr) {
    KafkaSettings settings = config_.AdminSettings();
    settings["bootstrap.servers"] = bootstrap_servers_;
    settings.emplace("log_level", "4");
    TRIBUTARY_ASSIGN_OR_RETURN(owners_admin_, KafkaAdmin::Open(settings));
  }
  absl::StatusOr<KafkaAdmin::GroupDescription> group =
      owners_admin_->DescribeGroup(config_.application_id(), kDescribeTimeoutMs);
  if (!group.ok()) {
    owners_problem_ = absl::StrCat("cannot describe the group: ", group.status().ToString());
    return group.status();
  }
  if (group->state != "Stable") {
    owners_problem_ = absl::StrCat("the group ", config_.application_id(), " is ", group->state,
                                   " (rebalancing)");
    return absl::OkStatus();
  }
  owners_rebalances_ = rebalances;
  for (const KafkaAdmin::GroupMember& member : group->members) {
    const size_t at = member.client_id.rfind(internal::kApplicationServerSeparator[0]);
    const std::string server = at == std::string::npos ? "" : member.client_id.substr(at + 1);
    for (const auto& partition : member.assignment) owners_[partition] = server;
  }
  return absl::OkStatus();
}

absl::StatusOr<KafkaStreams::KeyQueryMetadata> KafkaStreams::QueryMetadataForKey(
    std::string_view query, std::string_view key) {
  const QuerySpec* spec = topology_.query(query);
  if (spec == nullptr) return absl::NotFoundError(absl::StrCat("no query '", Sv(query), "'"));
  if (!threads_started_.load(std::memory_order_acquire)) {
    return absl::UnavailableError("not started");
  }
  const Topology::Subtopology* sub = topology_.SubtopologyOfStore(spec->store);
  if (sub == nullptr || sub->source_topics.empty()) {
    return absl::InternalError(absl::StrCat("query '", Sv(query), "': store ", spec->store,
                                            " has no sub-topology with a source"));
  }
  auto count = subtopology_partitions_.find(sub->id);
  const int32_t partitions = count == subtopology_partitions_.end() ? 1 : count->second;
  KeyQueryMetadata metadata;
  metadata.task = TaskId{sub->id, topology_.QueryPartition(*spec, key, partitions)};
  uint64_t rebalances = 0;
  for (const auto& thread : threads_) {
    const std::vector<TaskId> owned = thread->task_ids();
    if (std::find(owned.begin(), owned.end(), metadata.task) != owned.end()) {
      metadata.local = true;
      metadata.server = application_server_;
      return metadata;
    }
    rebalances += thread->readiness().rebalances;
  }

  const std::pair<std::string, int32_t> partition(TopicName(sub->source_topics.front()),
                                                  metadata.task.partition);
  absl::MutexLock lock(&owners_mu_);
  auto usable = [&] {
    auto it = owners_.find(partition);
    return it != owners_.end() && !it->second.empty() && it->second != application_server_;
  };
  const bool stale = owners_rebalances_ != rebalances || !usable();
  if (stale && absl::Now() - owners_fetched_ >= kOwnersMinAge) {
    if (absl::Status refreshed = RefreshOwners(rebalances); !refreshed.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot find the owner of task ",
                                                 metadata.task.ToString(), ": ",
                                                 refreshed.ToString()));
    }
  }
  auto it = owners_.find(partition);
  if (it == owners_.end() || it->second == application_server_) {
    return absl::UnavailableError(absl::StrCat(
        "task ", metadata.task.ToString(), " (", partition.first, " partition ", partition.second,
        ") has no owner now",
        owners_problem_.empty() ? " (rebalancing)" : absl::StrCat(": ", owners_problem_)));
  }
  if (it->second.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "task ", metadata.task.ToString(),
        " is owned by an instance without application.server (no query.port)"));
  }
  metadata.server = it->second;
  return metadata;
}

absl::StatusOr<std::optional<std::string>> KafkaStreams::QueryLocal(std::string_view query,
                                                                    std::string_view key) {
  const QuerySpec* spec = topology_.query(query);
  if (spec == nullptr) return absl::NotFoundError(absl::StrCat("no query '", Sv(query), "'"));
  if (!threads_started_.load(std::memory_order_acquire)) {
    return absl::UnavailableError("not started");
  }
  TRIBUTARY_ASSIGN_OR_RETURN(const KeyQueryMetadata metadata, QueryMetadataForKey(query, key));
  if (!metadata.local) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", metadata.task.ToString(), " is owned by ", metadata.server));
  }
  for (const auto& thread : threads_) {
    const std::vector<TaskId> owned = thread->task_ids();
    if (std::find(owned.begin(), owned.end(), metadata.task) == owned.end()) continue;
    absl::StatusOr<std::optional<std::string>> answer =
        thread->RunQuery(metadata.task, *spec, std::string(key), kQueryTimeout);
    if (absl::IsNotFound(answer.status())) {
      return absl::UnavailableError(absl::StrCat(answer.status().message(), " (rebalancing)"));
    }
    return answer;
  }
  return absl::UnavailableError(
      absl::StrCat("task ", metadata.task.ToString(), " moved meanwhile (rebalancing)"));
}

internal::HttpResponse KafkaStreams::AnswerQuery(const QuerySpec& query,
                                                 const internal::HttpRequest& request) {
  const std::string token = config_.query_token();
  const std::string authorization = request.Header("Authorization");
  if (!token.empty() && !SameToken(authorization, absl::StrCat("Bearer ", token))) {
    internal::HttpResponse response =
        Text(401, authorization.empty() ? "this endpoint needs Authorization: Bearer <token>"
                                        : "wrong token");
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  }
  const std::string& id = request.match;
  absl::StatusOr<std::string> key = query.key(id);
  if (!key.ok()) {
    return Text(absl::IsInvalidArgument(key.status()) ? 400 : 500,
                absl::StrCat("'", id, "' is not a key of ", query.name, ": ",
                             key.status().message()));
  }
  absl::StatusOr<KeyQueryMetadata> metadata = QueryMetadataForKey(query.name, *key);
  if (!metadata.ok()) return FromStatus(metadata.status());

  if (metadata->local) {
    absl::StatusOr<std::optional<std::string>> answer = QueryLocal(query.name, *key);
    internal::HttpResponse response;
    if (!answer.ok()) {
      response = FromStatus(answer.status());
    } else if (!answer->has_value()) {
      response = Text(404, absl::StrCat("no ", query.name, " ", id));
    } else {
      response.body = std::move(**answer);
      response.content_type = "application/json";
    }
    response.headers.emplace_back(kInstanceHeader, application_server_);
    return response;
  }
  if (!request.Header(kForwardedHeader).empty()) {
    return Text(503, absl::StrCat(application_server_, " does not own task ",
                                  metadata->task.ToString(), " (forwarded by ",
                                  request.Header(kForwardedHeader), "; rebalancing)"));
  }
  std::vector<std::pair<std::string, std::string>> headers = {
      {kForwardedHeader, application_server_}};
  if (!token.empty()) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token));
  absl::StatusOr<internal::HttpResponse> proxied = internal::HttpGet(
      metadata->server, absl::StrCat("/", query.name, "/", EncodePathSegment(id)), headers,
      kProxyTimeout);
  if (!proxied.ok()) {
    return Text(503, absl::StrCat("the owner of task ", metadata->task.ToString(), ", ",
                                  metadata->server, ", did not answer: ",
                                  proxied.status().message()));
  }
  internal::HttpResponse response;
  response.status = proxied->status;
  response.body = std::move(proxied->body);
  response.content_type = proxied->content_type;
  for (const char* name : {kInstanceHeader, "Retry-After", "WWW-Authenticate"}) {
    const std::string value = proxied->Header(name);
    if (!value.empty()) response.headers.emplace_back(name, value);
  }
  response.headers.emplace_back(kViaHeader, application_server_);
  return response;
}

}  // namespace tributary
