// HttpServer and HttpGet (engine/internal/http_server.h), the pieces both
// HTTP endpoints (metrics, queries) use, on 127.0.0.1 with no broker.
#include "engine/internal/http_server.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary::internal {
namespace {

using ::testing::HasSubstr;

TEST(HttpServerTest, RoutesGetTheDecodedMatchAndHeadersAndAnswerWithTheirs) {
  HttpServerOptions options;
  options.what = "test endpoint";
  options.keys = "test.host, test.port";
  options.host = "127.0.0.1";
  options.port = 0;
  options.routes = {{"/things/(.+)", [](const HttpRequest& request) {
                       HttpResponse response;
                       response.status = request.match == "missing" ? 404 : 200;
                       response.body = absl::StrCat(request.match, "|", request.Header("x-who"));
                       response.content_type = "application/json";
                       response.headers.emplace_back("X-Answered-By", "me");
                       return response;
                     }}};
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());

  absl::StatusOr<HttpResponse> got =
      HttpGet(address, "/things/%22A-7%22", {{"X-Who", "test"}}, absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "\"A-7\"|test") << "the path is decoded, header names case-insensitive";
  EXPECT_EQ(got->content_type, "application/json");
  EXPECT_EQ(got->Header("x-answered-by"), "me");

  got = HttpGet(address, "/things/missing", {}, absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 404);
  got = HttpGet(address, "/other", {}, absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 404) << "no route";

  // A second server on the same port fails naming it and the keys.
  HttpServerOptions same;
  same.what = "test endpoint";
  same.keys = "test.host, test.port";
  same.host = "127.0.0.1";
  same.port = (*server)->port();
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Start(std::move(same));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("test endpoint: cannot listen on ", address,
                                     " (test.host, test.port)")));

  // Nothing listens once the server is gone: Unavailable naming the address.
  server->reset();
  got = HttpGet(address, "/things/1", {}, absl::Seconds(2));
  EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(address));
  EXPECT_TRUE(absl::IsInvalidArgument(HttpGet("no-port", "/", {}, absl::Seconds(1)).status()));
}

}  // namespace
}  // namespace tributary::internal
