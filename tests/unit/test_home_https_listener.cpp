// The HTTPS listener's route table, socket-free (matchRoute) and on a real plain-HTTP listener
// on 127.0.0.1:0: 404, 405 with Allow, 415, 413, a handler that answers later from another
// thread, and stop() answering the request in progress before it returns.

#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "pass/home/https_listener.hpp"
#include "pass/home/log.hpp"

using namespace pass;
using namespace pass::home;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Kind = RouteRefusal::Kind;

namespace {

RouteHandler text(std::string body) {
  return [body](HttpRequest&, HttpPeer&, Respond respond) {
    respond(HttpAnswer{200, "text/plain", body});
  };
}

RouteTable sampleTable() {
  RouteTable table;
  table.routes.push_back(Route{.method = "GET",
                               .path = "/v1/things",
                               .prefix = false,
                               .mediaType = "",
                               .maxBody = 0,
                               .handler = text("things")});
  table.routes.push_back(Route{.method = "POST",
                               .path = "/v1/things",
                               .prefix = false,
                               .mediaType = "application/json",
                               .maxBody = 16,
                               .handler = text("posted")});
  table.routes.push_back(Route{.method = "DELETE",
                               .path = "/v1/things/",
                               .prefix = true,
                               .mediaType = "",
                               .maxBody = 0,
                               .handler = text("deleted")});
  // The refusals as the ingest table answers them: status and a code in the body.
  table.refuse = [](const RouteRefusal& r, const HttpPeer&) -> std::optional<HttpAnswer> {
    switch (r.kind) {
      case Kind::kNotFound:
        return HttpAnswer{404, "text/plain", "not_found " + r.target};
      case Kind::kMethodNotAllowed:
        return HttpAnswer{405, "text/plain", "method " + r.method, {{"Allow", r.allow}}};
      case Kind::kUnsupportedMediaType:
        return HttpAnswer{415, "text/plain", "media " + r.contentType};
      case Kind::kTooLarge:
        return HttpAnswer{413, "text/plain", "too_large"};
      case Kind::kMalformed:
        break;
    }
    return std::nullopt;
  };
  return table;
}

struct Answer {
  unsigned status = 0;
  std::string body;
  http::fields headers;
  bool keepAlive = false;
};

class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(io_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  Answer send(http::verb method, const std::string& target, const std::string& body = "",
              const std::string& contentType = "application/json") {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!body.empty()) {
      req.set(http::field::content_type, contentType);
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return Answer{res.result_int(), res.body(), res.base(), res.keep_alive()};
  }

  /// Whether the listener closed the connection (a read finds its end).
  bool closed() {
    beast::error_code ec;
    stream_.expires_after(std::chrono::seconds(10));
    char byte = 0;
    stream_.read_some(net::buffer(&byte, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

 private:
  net::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

class Listening {
 public:
  explicit Listening(RouteTable table, std::size_t maxBody = 1024) : log_(LogLevel::kError) {
    HttpsListenerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.maxBody = maxBody;
    o.threads = 2;
    listener_ = HttpsListener::create(std::move(o), std::move(table), log_).value();
    REQUIRE(listener_->start().has_value());
  }
  HttpsListener& listener() { return *listener_; }
  std::uint16_t port() const { return listener_->port(); }

 private:
  Logger log_;
  std::unique_ptr<HttpsListener> listener_;
};

}  // namespace

TEST_CASE("matchRoute: path, then method, then media type") {
  auto table = sampleTable();
  auto found = matchRoute(table, "GET", "/v1/things", "");
  REQUIRE(found.route != nullptr);
  CHECK(found.route->method == "GET");

  auto unknown = matchRoute(table, "GET", "/v1/other", "");
  CHECK(unknown.route == nullptr);
  REQUIRE(unknown.refusal.has_value());
  CHECK(unknown.refusal->kind == Kind::kNotFound);
  CHECK(unknown.refusal->target == "/v1/other");
  // The path exactly: a query string is another target.
  CHECK(matchRoute(table, "GET", "/v1/things?x=1", "").refusal->kind == Kind::kNotFound);

  auto wrongMethod = matchRoute(table, "PUT", "/v1/things", "");
  REQUIRE(wrongMethod.refusal.has_value());
  CHECK(wrongMethod.refusal->kind == Kind::kMethodNotAllowed);
  CHECK(wrongMethod.refusal->allow == "GET, POST");

  auto wrongType = matchRoute(table, "POST", "/v1/things", "text/plain");
  REQUIRE(wrongType.refusal.has_value());
  CHECK(wrongType.refusal->kind == Kind::kUnsupportedMediaType);
  CHECK(wrongType.refusal->mediaType == "application/json");
  // Parameters and case do not matter (RFC 9110 8.3.1).
  CHECK(matchRoute(table, "POST", "/v1/things", " Application/JSON; charset=utf-8").route);

  CHECK(matchRoute(table, "DELETE", "/v1/things/7", "").route != nullptr);
  CHECK(matchRoute(table, "GET", "/v1/things/7", "").refusal->kind == Kind::kMethodNotAllowed);
}

TEST_CASE("matchRoute: \"*\" stands for one segment, a query fits only a route that takes one") {
  auto route = [](std::string method, std::string path, bool query) {
    return Route{.method = std::move(method),
                 .path = std::move(path),
                 .prefix = false,
                 .mediaType = "",
                 .maxBody = 0,
                 .handler = text(""),
                 .query = query};
  };
  RouteTable table;
  table.routes = {route("GET", "/v1/items/*", true), route("POST", "/v1/items/*/close", true),
                  route("GET", "/v1/plain/*", false)};
  auto pathOf = [&](std::string_view method, std::string_view target) -> std::string {
    auto match = matchRoute(table, method, target, "");
    return match.route ? match.route->path : "refused";
  };
  CHECK(pathOf("GET", "/v1/items/7") == "/v1/items/*");
  CHECK(pathOf("GET", "/v1/items/") == "/v1/items/*");  // an empty segment is one too
  CHECK(pathOf("GET", "/v1/items/7?all=1") == "/v1/items/*");
  CHECK(pathOf("POST", "/v1/items/7/close") == "/v1/items/*/close");
  CHECK(pathOf("POST", "/v1/items/7/close?now=1") == "/v1/items/*/close");
  CHECK(pathOf("GET", "/v1/items") == "refused");
  CHECK(pathOf("GET", "/v1/items/7/8") == "refused");
  CHECK(pathOf("GET", "/v1/itemsX/7") == "refused");
  CHECK(pathOf("GET", "/v1/plain/7") == "/v1/plain/*");
  CHECK(pathOf("GET", "/v1/plain/7?x=1") == "refused");
  auto wrongMethod = matchRoute(table, "GET", "/v1/items/7/close", "");
  REQUIRE(wrongMethod.refusal.has_value());
  CHECK(wrongMethod.refusal->kind == Kind::kMethodNotAllowed);
  CHECK(wrongMethod.refusal->allow == "POST");
  CHECK(matchRoute(table, "GET", "/v1/items/7/open", "").refusal->kind == Kind::kNotFound);
}

TEST_CASE("the listener answers 404, 405, 415 and 413 from the table's refusals") {
  Listening home(sampleTable(), 1024);
  Client client(home.port());
  auto ok = client.send(http::verb::get, "/v1/things");
  CHECK(ok.status == 200);
  CHECK(ok.body == "things");
  CHECK(ok.keepAlive);

  // Refused on the header alone, no body: the connection stays.
  auto missing = client.send(http::verb::get, "/nowhere");
  CHECK(missing.status == 404);
  CHECK(missing.body == "not_found /nowhere");
  CHECK(missing.keepAlive);

  auto method = client.send(http::verb::put, "/v1/things");
  CHECK(method.status == 405);
  CHECK(method.headers[http::field::allow] == "GET, POST");

  auto posted = client.send(http::verb::post, "/v1/things", "{}");
  CHECK(posted.status == 200);
  CHECK(posted.body == "posted");

  auto media = client.send(http::verb::post, "/v1/things", "{}", "text/plain");
  CHECK(media.status == 415);
  CHECK(media.body == "media text/plain");

  // The route's limit (16 bytes) is below the listener's (1024).
  Client big(home.port());
  auto tooLarge = big.send(http::verb::post, "/v1/things", std::string(17, 'x'));
  CHECK(tooLarge.status == 413);
  CHECK_FALSE(tooLarge.keepAlive);
  CHECK(big.closed());

  // The listener's own limit holds for a route without one.
  Client bigger(home.port());
  CHECK(bigger.send(http::verb::delete_, "/v1/things/1", std::string(1025, 'x')).status == 413);
}

TEST_CASE("a handler may answer later from another thread; stop() waits for that answer") {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Respond> pending;
  RouteTable table = sampleTable();
  // Keeps the answer for another thread, as ingest does until the group commit.
  table.routes.push_back(Route{.method = "POST",
                               .path = "/v1/slow",
                               .prefix = false,
                               .mediaType = "",
                               .maxBody = 0,
                               .handler = [&](HttpRequest& request, HttpPeer&, Respond respond) {
                                 std::lock_guard lock(mutex);
                                 pending = [respond, body = request.body()](HttpAnswer) {
                                   respond(HttpAnswer{200, "text/plain", "late " + body});
                                 };
                                 cv.notify_all();
                               }});
  Listening home(std::move(table));
  Answer answer;
  std::thread caller([&] {
    Client client(home.port());
    answer = client.send(http::verb::post, "/v1/slow", "x", "text/plain");
  });
  {
    std::unique_lock lock(mutex);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return pending.has_value(); }));
  }
  home.listener().stop();
  // Stopping, the listener still holds the request: the answer goes out when it comes.
  std::thread answering([&] {
    std::lock_guard lock(mutex);
    (*pending)(HttpAnswer{});
  });
  home.listener().wait();
  caller.join();
  answering.join();
  CHECK(answer.status == 200);
  CHECK(answer.body == "late x");
  // Answered while stopping: the connection does not stay open.
  CHECK_FALSE(answer.keepAlive);
}
