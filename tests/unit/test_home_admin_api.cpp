// The admin API and the acknowledgement link on a real listener (127.0.0.1, port 0) over a
// real store in a temp directory, with a plain Beast HTTP client.

#include <doctest/doctest.h>

#include <mutex>
#include <tuple>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "pass/home/admin_api.hpp"
#include "pass/home/log.hpp"
#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "platform/fs.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::permissionsOf;
using pass::home::test::sampleAgent;
using pass::home::test::TempDir;
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

namespace {

constexpr const char* kAgent = "11111111-2222-4333-8444-555555555555";
constexpr std::int64_t kT0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
constexpr std::int64_t kHour = 3'600'000;
constexpr const char* kAckBase = "https://pass.example.com:9456";
// The component lands in the ticket's title, and the title in the link's page.
constexpr const char* kNastyComponent = "<script>alert(1)</script> & \"fan\"";

struct Answer {
  unsigned status = 0;
  std::string body;
  http::fields headers;
  Json json() const { return Json::parse(body, nullptr, false); }
};

// A home state directory with one agent and tickets made through Store::commit, and the admin
// API listening on it.
class AdminHome {
 public:
  explicit AdminHome(std::int64_t ackLinkValidMs = HomeConfig{}.ackLinkValidMs)
      : log_(LogLevel::kError) {
    auto opened = Store::open(state() / "home.db", Store::Mode::kCreate);
    REQUIRE(opened.has_value());
    Store store = std::move(*opened);
    auto agent = sampleAgent(kAgent);
    agent.customer = "A&B <Corp>";
    REQUIRE(store.addAgent(agent).has_value());
    auto key = loadAckKey(state());
    REQUIRE(key.has_value());
    HomeConfig cfg;
    cfg.ackUrl = kAckBase;
    cfg.ackLinkValidMs = ackLinkValidMs;
    policy_ = Policy::make(std::move(cfg), *key);
    store.setPolicy(policy_);
    commit(store, 1, {alert("e1", "307080", kNastyComponent)});
    commit(store, 2, {alert("e2", "3A1234", "DKC-0 PS 1")});

    AdminApiOptions options;
    options.state = state();
    options.port = 0;
    options.portFile = dir_ / "admin.port";
    options.policy = policy_;
    options.now = [] { return kT0 + kHour; };
    auto api = createAdminListener(options, log_);
    REQUIRE_MESSAGE(api.has_value(), pass::test::errorText(api));
    api_ = std::move(*api);
    REQUIRE(api_->start().has_value());
    auto token = platform::readFile(state() / "admin.token");
    REQUIRE(token.has_value());
    token_ = token->substr(0, 64);
  }

  fs::path state() const { return dir_.path(); }
  const std::string& token() const { return token_; }
  HttpsListener& api() { return *api_; }
  const Policy& policy() const { return *policy_; }

  // The path of a ticket's acknowledgement link, as the messages carry it, issued at `issuedMs`
  // (by default the API's now).
  std::string ackPath(std::int64_t ticket, std::int64_t issuedMs = kT0 + kHour) const {
    auto url = policy_->ackUrl(ticket, issuedMs);
    REQUIRE(url.starts_with(kAckBase));
    return url.substr(std::string_view(kAckBase).size());
  }

  Answer send(http::verb method, const std::string& target, const std::string& body = "",
              std::optional<std::string> auth = std::nullopt) {
    net::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), api_->port()));
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (auth) req.set(http::field::authorization, *auth);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.keep_alive(false);
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    return Answer{res.result_int(), res.body(), res.base()};
  }
  Answer call(http::verb method, const std::string& target, const std::string& body = "") {
    return send(method, target, body, "Bearer " + token_);
  }

  TicketRow ticket(std::int64_t id) {
    auto store = Store::open(state() / "home.db");
    REQUIRE(store.has_value());
    auto row = store->ticket(id);
    REQUIRE(row.has_value());
    REQUIRE(row->has_value());
    return **row;
  }
  std::vector<TicketLogRow> ticketLog(std::int64_t id) {
    auto store = Store::open(state() / "home.db");
    REQUIRE(store.has_value());
    auto rows = store->ticketLog(id);
    REQUIRE(rows.has_value());
    return *rows;
  }

 private:
  static EventRecord alert(std::string id, std::string code, std::string component) {
    EventRecord e;
    e.family = "hitachi_svp";
    e.array = "410123";
    e.id = std::move(id);
    e.code = std::move(code);
    e.severity = "acute";
    e.kind = "alert";
    e.component = std::move(component);
    e.text = "ALARM";
    e.payload = "{}";
    return e;
  }
  static void commit(Store& store, std::uint64_t seq, std::vector<EventRecord> events) {
    EnvelopeRecord r;
    r.agentId = kAgent;
    r.seq = seq;
    r.createdMs = r.receivedMs = kT0 + static_cast<std::int64_t>(seq);
    r.type = "report";
    r.size = 300;
    r.payload = R"({"schema":1,"type":"report"})";
    for (auto& e : events) e.occurredMs = r.createdMs;
    r.events = std::move(events);
    const EnvelopeRecord* batch[] = {&r};
    auto results = store.commit(batch);
    REQUIRE_MESSAGE(results.has_value(), pass::test::errorText(results));
  }

  TempDir dir_;
  Logger log_;
  std::shared_ptr<const Policy> policy_;
  std::unique_ptr<HttpsListener> api_;
  std::string token_;
};

template <typename R>
std::string codeOf(const R& r) {
  return r ? std::string("ok") : r.error().code;
}

bool hasLog(const std::vector<TicketLogRow>& rows, std::string_view action, std::string_view who) {
  return std::any_of(rows.begin(), rows.end(),
                     [&](const auto& r) { return r.action == action && r.who == who; });
}

}  // namespace

TEST_CASE("admin listen addresses and the token file") {
  AdminApiOptions o;
  CHECK(parseAdminListen("127.0.0.1:0", o).has_value());
  CHECK(o.host == "127.0.0.1");
  CHECK(o.port == 0);
  CHECK(parseAdminListen("[::1]:9456", o).has_value());
  CHECK(o.host == "::1");
  CHECK(o.port == 9456);
  CHECK(codeOf(parseAdminListen("localhost:9456", o)) == "usage.admin_listen");
  CHECK(codeOf(parseAdminListen("127.0.0.1:99999", o)) == "usage.admin_listen");
  CHECK(codeOf(parseAdminListen("127.0.0.1", o)) == "usage.admin_listen");
  CHECK(isLoopbackHost("127.0.0.1"));
  CHECK(isLoopbackHost("127.8.9.10"));
  CHECK(isLoopbackHost("::1"));
  CHECK_FALSE(isLoopbackHost("0.0.0.0"));
  CHECK_FALSE(isLoopbackHost("192.0.2.7"));

  TempDir dir;
  auto first = loadAdminToken(dir.path());
  REQUIRE(first.has_value());
  CHECK(first->size() == 64);
  CHECK(permissionsOf(dir / "admin.token") == (fs::perms::owner_read | fs::perms::owner_write));
  auto again = loadAdminToken(dir.path());
  REQUIRE(again.has_value());
  CHECK(*again == *first);
  REQUIRE(platform::writeFileAtomic(dir / "admin.token", "not hex\n").has_value());
  CHECK(codeOf(loadAdminToken(dir.path())) == "admin_token");
}

TEST_CASE("a non-loopback admin address needs the server certificate") {
  TempDir dir;
  Logger log(LogLevel::kError);
  auto policy = Policy::make(HomeConfig{}, Bytes(32, 1));
  AdminApiOptions o;
  o.state = dir.path();
  o.host = "0.0.0.0";
  o.port = 0;
  o.policy = policy;
  auto api = createAdminListener(o, log);
  REQUIRE_FALSE(api.has_value());
  CHECK(api.error().code == "tls");
  CHECK(api.error().message.find("server.crt") != std::string::npos);
}

TEST_CASE("the admin API wants the bearer token") {
  AdminHome home;
  auto port = platform::readFile(home.state() / "admin.port");
  REQUIRE(port.has_value());
  CHECK(*port == fmt::format("{}\n", home.api().port()));
  CHECK_FALSE(home.api().tls());

  for (auto auth : std::vector<std::optional<std::string>>{
           std::nullopt, "Bearer " + std::string(64, '0'), "Bearer", "Basic " + home.token(),
           "Bearer " + home.token() + "0", "Bearer " + home.token().substr(1)}) {
    CAPTURE(auth.value_or("(none)"));
    auto a = home.send(http::verb::get, "/v1/tickets", "", auth);
    CHECK(a.status == 401);
    CHECK(a.json()["error"] == "unauthorized");
    CHECK(a.json()["detail"].is_string());
    CHECK(a.headers[http::field::www_authenticate].starts_with("Bearer"));
  }
  // Writes are refused too, and change nothing.
  auto a = home.send(http::verb::post, "/v1/tickets/1/ack", R"({"by":"mallory"})",
                     "Bearer " + std::string(64, 'f'));
  CHECK(a.status == 401);
  CHECK(home.ticket(1).state == "open");
  CHECK(home.send(http::verb::get, "/v1/tickets", "", "bearer " + home.token()).status == 200);
}

TEST_CASE("tickets: list, show, ack, resolve, reopen with the audit trail") {
  AdminHome home;
  auto list = home.call(http::verb::get, "/v1/tickets");
  REQUIRE(list.status == 200);
  auto rows = list.json();
  REQUIRE(rows.is_array());
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["customer"] == "A&B <Corp>");
  CHECK(home.call(http::verb::get, "/v1/tickets?customer=Nobody").json().empty());
  CHECK(home.call(http::verb::get, "/v1/tickets?customer=A%26B%20%3CCorp%3E").json().size() == 2);
  CHECK(home.call(http::verb::get, "/v1/tickets?array=410123&all=1").json().size() == 2);

  auto show = home.call(http::verb::get, "/v1/tickets/1");
  REQUIRE(show.status == 200);
  CHECK(show.json()["id"] == 1);
  CHECK(show.json()["log"].is_array());
  CHECK(show.json()["log"][0]["action"] == "opened");
  CHECK(show.json()["messages"].is_array());
  CHECK(home.call(http::verb::get, "/v1/tickets/99").status == 404);
  CHECK(home.call(http::verb::get, "/v1/tickets/99").json()["error"] == "ticket.unknown");
  CHECK(home.call(http::verb::get, "/v1/tickets/abc").status == 404);
  CHECK(home.call(http::verb::get, "/v1/nothing").status == 404);
  auto wrongMethod = home.call(http::verb::delete_, "/v1/tickets/1");
  CHECK(wrongMethod.status == 405);
  CHECK(wrongMethod.headers[http::field::allow] == "GET");

  auto ack =
      home.call(http::verb::post, "/v1/tickets/1/ack", R"({"by":"alice","note":"on my way"})");
  REQUIRE(ack.status == 200);
  CHECK(ack.json()["state"] == "acknowledged");
  CHECK(ack.json()["acked_by"] == "alice");
  CHECK(home.ticket(1).ackedMs == kT0 + kHour);
  auto log = home.ticketLog(1);
  CHECK(hasLog(log, "acknowledged", "alice"));
  CHECK(std::any_of(log.begin(), log.end(), [](const auto& r) { return r.detail == "on my way"; }));

  auto again = home.call(http::verb::post, "/v1/tickets/1/ack", R"({"by":"alice"})");
  CHECK(again.status == 409);
  CHECK(again.json()["error"] == "ticket.state");

  auto resolved = home.call(http::verb::post, "/v1/tickets/1/resolve", R"({"by":"bob"})");
  REQUIRE(resolved.status == 200);
  CHECK(resolved.json()["state"] == "resolved");
  CHECK(hasLog(home.ticketLog(1), "resolved", "bob"));
  CHECK(home.call(http::verb::get, "/v1/tickets").json().size() == 1);
  CHECK(home.call(http::verb::get, "/v1/tickets?all=1").json().size() == 2);

  auto reopened = home.call(http::verb::post, "/v1/tickets/1/reopen", R"({"by":"carol"})");
  REQUIRE(reopened.status == 200);
  CHECK(reopened.json()["state"] == "open");
  CHECK(hasLog(home.ticketLog(1), "reopened", "carol"));
  CHECK(home.call(http::verb::post, "/v1/tickets/99/ack", R"({"by":"x"})").status == 404);
}

TEST_CASE("bad requests are 400 with error and detail") {
  AdminHome home;
  for (auto body : {"", "{", "[1,2]", "\"by\"", R"({"by":"al)"}) {
    CAPTURE(body);
    auto a = home.call(http::verb::post, "/v1/tickets/1/ack", body);
    CHECK(a.status == 400);
    CHECK(a.json()["error"] == "usage.json");
    CHECK(a.json()["detail"].is_string());
  }
  auto noBy = home.call(http::verb::post, "/v1/tickets/1/ack", R"({"note":"who?"})");
  CHECK(noBy.status == 400);
  CHECK(noBy.json()["detail"].get<std::string>().find("\"by\"") != std::string::npos);
  CHECK(home.call(http::verb::post, "/v1/tickets/1/ack", R"({"by":7})").status == 400);
  CHECK(home.call(http::verb::post, "/v1/silences", R"({"by":"x","reason":"r"})").status == 400);
  CHECK(home.call(http::verb::post, "/v1/silences",
                  R"({"by":"x","reason":"r","array":"410123","until":"tomorrow"})")
            .json()["error"] == "usage.time");
  CHECK(home.call(http::verb::post, "/v1/notify-test", R"({"to":""})").status == 400);
  CHECK(home.ticket(1).state == "open");
}

TEST_CASE("silences: add, list, remove") {
  AdminHome home;
  auto added = home.call(http::verb::post, "/v1/silences",
                         R"({"customer":"A&B <Corp>","array":"410123","until":"+2h",)"
                         R"("reason":"firmware upgrade","by":"dave"})");
  REQUIRE(added.status == 201);
  auto id = added.json()["id"].get<std::int64_t>();
  CHECK(id > 0);
  CHECK(added.json()["author"] == "dave");
  CHECK(added.json()["starts_ms"] == kT0 + kHour);
  CHECK(added.json()["ends_ms"] == kT0 + 3 * kHour);

  auto list = home.call(http::verb::get, "/v1/silences");
  REQUIRE(list.status == 200);
  REQUIRE(list.json().size() == 1);
  CHECK(list.json()[0]["reason"] == "firmware upgrade");

  CHECK(home.call(http::verb::delete_, fmt::format("/v1/silences/{}", id)).status == 400);
  auto removed = home.call(http::verb::delete_, fmt::format("/v1/silences/{}?by=erin", id));
  REQUIRE(removed.status == 200);
  CHECK(removed.json()["removed"] == true);
  CHECK(home.call(http::verb::get, "/v1/silences").json().empty());
  auto all = home.call(http::verb::get, "/v1/silences?all=1").json();
  REQUIRE(all.size() == 1);
  CHECK(all[0]["removed_by"] == "erin");
  CHECK(home.call(http::verb::delete_, fmt::format("/v1/silences/{}?by=erin", id)).status == 404);
  CHECK(home.call(http::verb::put, "/v1/silences").status == 405);
}

TEST_CASE("the acknowledgement link: GET shows, POST acknowledges") {
  AdminHome home;
  auto path = home.ackPath(1);
  auto before = home.ticketLog(1).size();

  // No bearer token: the link carries its own.
  auto page = home.send(http::verb::get, path);
  REQUIRE(page.status == 200);
  CHECK(page.headers[http::field::content_type].starts_with("text/html"));
  CHECK(page.headers[http::field::cache_control] == "no-store");
  CHECK(page.headers["Referrer-Policy"] == "no-referrer");
  CHECK(page.body.find("Ticket #1") != std::string::npos);
  CHECK(page.body.find("<strong>open</strong>") != std::string::npos);
  CHECK(page.body.find("<form method=\"post\">") != std::string::npos);
  // Everything from the ticket is escaped.
  CHECK(page.body.find("<script>") == std::string::npos);
  CHECK(page.body.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;fan&quot;") !=
        std::string::npos);
  CHECK(page.body.find("A&amp;B &lt;Corp&gt;") != std::string::npos);
  // A scanner fetching the link twice changes nothing.
  CHECK(home.send(http::verb::get, path).status == 200);
  CHECK(home.ticket(1).state == "open");
  CHECK(home.ticketLog(1).size() == before);

  auto done = home.send(http::verb::post, path);
  REQUIRE(done.status == 200);
  CHECK(done.body.find("Acknowledged") != std::string::npos);
  CHECK(done.body.find("<form") == std::string::npos);
  auto t = home.ticket(1);
  CHECK(t.state == "acknowledged");
  CHECK(t.ackedBy == "ack link");
  CHECK(hasLog(home.ticketLog(1), "acknowledged", "ack link"));

  auto twice = home.send(http::verb::post, path);
  CHECK(twice.status == 200);
  CHECK(twice.body.find("no longer open") != std::string::npos);
  auto shown = home.send(http::verb::get, path);
  CHECK(shown.body.find("by ack link") != std::string::npos);
  CHECK(shown.body.find("<form") == std::string::npos);
  // Ticket 2 was not touched by ticket 1's link.
  CHECK(home.ticket(2).state == "open");
}

TEST_CASE("a wrong acknowledgement link is 404 and says nothing about the ticket") {
  AdminHome home;
  auto good = home.ackPath(2);
  auto token2 = good.substr(good.rfind('/') + 1);
  auto wrongToken = home.send(http::verb::post, "/v1/ack/2/" + std::string(32, '0'));
  auto otherTicket = home.send(http::verb::post, "/v1/ack/1/" + token2);
  auto noTicket = home.send(http::verb::get, "/v1/ack/999/" + std::string(32, '0'));
  auto rightTokenNoTicket = home.send(http::verb::get, home.ackPath(999));
  auto garbage = home.send(http::verb::get, "/v1/ack/x/y");
  for (const auto* a : {&wrongToken, &otherTicket, &noTicket, &rightTokenNoTicket, &garbage}) {
    CHECK(a->status == 404);
    CHECK(a->body == wrongToken.body);
  }
  CHECK(home.ticket(1).state == "open");
  CHECK(home.ticket(2).state == "open");
  CHECK(home.send(http::verb::put, good).status == 405);
  CHECK(home.ticket(2).state == "open");
}

TEST_CASE("an acknowledgement link expires and says so; its issue time is under the MAC") {
  constexpr std::int64_t kDay = 24 * kHour;
  AdminHome home;  // now = kT0 + kHour, links valid 7 days
  // Issued 7 days and 1 hour ago: expired an hour ago.
  auto old = home.ackPath(1, kT0 - 7 * kDay);
  auto page = home.send(http::verb::get, old);
  CHECK(page.status == 410);
  CHECK(page.headers[http::field::cache_control] == "no-store");
  CHECK(page.body.find("ticket #1 expired on 2027-01-15T08:00:00Z") != std::string::npos);
  CHECK(page.body.find("links work for 7 days") != std::string::npos);
  CHECK(page.body.find("pass-home tickets ack 1") != std::string::npos);
  CHECK(page.body.find("<form") == std::string::npos);
  CHECK(home.send(http::verb::post, old).status == 410);
  CHECK(home.ticket(1).state == "open");

  // Moving the issue time forward breaks the MAC: the same 404 as any wrong link.
  auto slash = old.rfind('/');
  auto issuedAt = old.rfind('/', slash - 1) + 1;
  auto tampered =
      old.substr(0, issuedAt) + std::to_string((kT0 + kHour) / 1000) + old.substr(slash);
  auto forged = home.send(http::verb::post, tampered);
  CHECK(forged.status == 404);
  CHECK(forged.body == home.send(http::verb::get, "/v1/ack/x/y").body);
  CHECK(home.ticket(1).state == "open");

  // Issued 6 days ago: still works.
  auto fresh = home.ackPath(1, kT0 + kHour - 6 * kDay);
  CHECK(home.send(http::verb::post, fresh).status == 200);
  CHECK(home.ticket(1).state == "acknowledged");
}

TEST_CASE("a link of the first format (no issue time) counts as expired") {
  AdminHome home;
  auto page = home.send(http::verb::get, "/v1/ack/2/" + home.policy().legacyAckToken(2));
  CHECK(page.status == 410);
  CHECK(page.body.find("made before links carried their issue time") != std::string::npos);
  CHECK(home.send(http::verb::post, "/v1/ack/2/" + home.policy().legacyAckToken(2)).status == 410);
  CHECK(home.ticket(2).state == "open");
  // A wrong token of that format is just wrong.
  CHECK(home.send(http::verb::get, "/v1/ack/2/" + std::string(32, '0')).status == 404);
}

TEST_CASE("ack-link-valid-seconds: a link works for exactly that long") {
  AdminHome home(90'000);  // now = kT0 + kHour
  CHECK(home.send(http::verb::get, home.ackPath(1, kT0 + kHour - 89'000)).status == 200);
  auto late = home.send(http::verb::get, home.ackPath(1, kT0 + kHour - 90'000));
  CHECK(late.status == 410);
  CHECK(late.body.find("links work for 90 seconds") != std::string::npos);
}

TEST_CASE("the route table: an unknown path is 404, a wrong method 405 naming the right ones") {
  AdminHome home;
  // Answered by the table before the token is looked at: with it or without.
  for (auto auth :
       std::vector<std::optional<std::string>>{std::nullopt, "Bearer " + home.token()}) {
    CAPTURE(auth.value_or("(none)"));
    for (const char* path : {"/", "/v1", "/v1/", "/v1/nothing", "/v2/tickets", "/v1/tickets/1/x",
                             "/v1/tickets/1/ack/2", "/v1/notify-test/1", "/v1/ticketsX"}) {
      CAPTURE(path);
      auto a = home.send(http::verb::get, path, "", auth);
      CHECK(a.status == 404);
      CHECK(a.json()["error"] == "not_found");
      CHECK(a.headers[http::field::cache_control] == "no-store");
    }
    struct Wrong {
      http::verb method;
      const char* path;
      const char* allow;
    };
    for (auto [method, path, allow] : {Wrong{http::verb::post, "/v1/tickets", "GET"},
                                       Wrong{http::verb::delete_, "/v1/tickets/1?all=1", "GET"},
                                       Wrong{http::verb::get, "/v1/tickets/1/ack", "POST"},
                                       Wrong{http::verb::put, "/v1/tickets/1/resolve", "POST"},
                                       Wrong{http::verb::get, "/v1/tickets/1/reopen", "POST"},
                                       Wrong{http::verb::delete_, "/v1/silences", "GET, POST"},
                                       Wrong{http::verb::get, "/v1/silences/1", "DELETE"},
                                       Wrong{http::verb::get, "/v1/notify-test", "POST"}}) {
      CAPTURE(path);
      auto a = home.send(method, path, "", auth);
      CHECK(a.status == 405);
      CHECK(a.headers[http::field::allow] == allow);
      CHECK(a.json()["error"] == "method");
      CHECK(a.json()["detail"] == fmt::format("use {}", allow));
    }
  }
  // A link answers as a link: the page of a wrong one, with the methods it takes.
  auto put = home.send(http::verb::put, home.ackPath(1));
  CHECK(put.status == 405);
  CHECK(put.headers[http::field::allow] == "GET, POST");
  CHECK(put.headers[http::field::content_type].starts_with("text/html"));
  CHECK(put.body.find("not valid") != std::string::npos);
  // So does a path under /v1/ack/ of another shape, with or without the token.
  auto wrong = home.send(http::verb::get, "/v1/ack/x/y");
  for (const char* path : {"/v1/ack/", "/v1/ack/1", "/v1/ack/1/2/3/4"}) {
    CAPTURE(path);
    auto a = home.send(http::verb::get, path);
    CHECK(a.status == 404);
    CHECK(a.body == wrong.body);
    CHECK(home.call(http::verb::post, path).body == wrong.body);
  }
  CHECK(home.ticket(1).state == "open");
}

TEST_CASE("every endpoint takes a query string after its path, and an encoded path") {
  AdminHome home;
  CHECK(home.call(http::verb::get, "/v1/tickets/1?x=1").json()["id"] == 1);
  CHECK(home.call(http::verb::get, "/v1/tickets/%31").json()["id"] == 1);
  CHECK(home.call(http::verb::post, "/v1/tickets/2/ack?x=1", R"({"by":"al"})").status == 200);
  CHECK(home.ticket(2).state == "acknowledged");
  CHECK(home.send(http::verb::get, home.ackPath(1) + "?utm_source=mail").status == 200);
  CHECK(home.call(http::verb::get, "/v1/silences?all=1").status == 200);
}

TEST_CASE("refused requests are logged as admin_request too, a link's token cut") {
  TempDir dir;
  std::mutex mutex;
  std::vector<Json> lines;
  Logger log(LogLevel::kInfo, [&](std::string_view line) {
    std::lock_guard lock(mutex);
    lines.push_back(Json::parse(line));
  });
  AdminApiOptions o;
  o.state = dir.path();
  o.port = 0;
  o.policy = Policy::make(HomeConfig{}, Bytes(32, 1));
  {
    auto api = createAdminListener(o, log);
    REQUIRE_MESSAGE(api.has_value(), pass::test::errorText(api));
    REQUIRE((*api)->start().has_value());
    auto send = [&](http::verb method, const std::string& target) {
      net::io_context io;
      tcp::socket socket(io);
      socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), (*api)->port()));
      http::request<http::string_body> req{method, target, 11};
      req.set(http::field::host, "127.0.0.1");
      req.keep_alive(false);
      http::write(socket, req);
      beast::flat_buffer buffer;
      http::response<http::string_body> res;
      http::read(socket, buffer, res);
      return res.result_int();
    };
    CHECK(send(http::verb::get, "/v1/nothing?x=1") == 404);
    CHECK(send(http::verb::put, "/v1/ack/1/1800000000/secret") == 405);
    CHECK(send(http::verb::get, "/v1/tickets") == 401);
  }  // stopped: every line is written
  std::vector<std::tuple<std::string, std::string, unsigned>> requests;
  for (const auto& line : lines) {
    if (line.value("event", "") != "admin_request") continue;
    requests.emplace_back(line["method"], line["path"], line["status"]);
  }
  CHECK(requests ==
        std::vector<std::tuple<std::string, std::string, unsigned>>{{"GET", "/v1/nothing", 404},
                                                                    {"PUT", "/v1/ack/1/...", 405},
                                                                    {"GET", "/v1/tickets", 401}});
}
