// Notification channels: the pure renderings with exact expectations, then each channel
// against real servers started as children: tools/smtpd/pass-smtpd.py (aiosmtpd, Debian's
// python3) and tools/http-receiver/http-receiver.py (SMS gateways, webhooks).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include "pass/home/notify.hpp"
#include "test_child_server.hpp"
#include "test_smtpd.hpp"
#include "test_support.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace notify = pass::home::notify;
using nlohmann::json;
using notify::Outcome;
using pass::test::Smtpd;
using pass::test::TempDir;
using namespace std::chrono_literals;

const fs::path kSource = PASS_SOURCE_DIR;
const fs::path kData = kSource / "tests/data/notify";

// doctest would pick notify::toString (a string_view) by ADL and fail to print it.
std::string name(Outcome outcome) { return std::string(notify::toString(outcome)); }

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read ", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<json> readJsonLines(const fs::path& path) {
  std::vector<json> out;
  if (!fs::exists(path)) return out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

std::vector<json> eventsNamed(const fs::path& path, std::string_view name) {
  std::vector<json> out;
  for (auto& e : readJsonLines(path)) {
    if (e.value("event", "") == name) out.push_back(e);
  }
  return out;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unbase64(std::string_view text) {
  std::string out(3 * text.size() / 4 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  REQUIRE(n >= 0);
  std::size_t padding = static_cast<std::size_t>(
      std::count(text.end() - std::min<std::size_t>(2, text.size()), text.end(), '='));
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

/// Decodes RFC 2047 B-words of an unfolded header value (what a mail reader shows).
std::string decodeEncodedWords(std::string value) {
  std::string out;
  std::size_t i = 0;
  while (i < value.size()) {
    if (value.compare(i, 10, "=?UTF-8?B?") == 0) {
      auto end = value.find("?=", i + 10);
      REQUIRE(end != std::string::npos);
      out += unbase64(value.substr(i + 10, end - i - 10));
      i = end + 2;
      // White space between two encoded words is not part of the text (RFC 2047 6.2).
      while (i < value.size() && value[i] == ' ' && value.compare(i + 1, 10, "=?UTF-8?B?") == 0)
        ++i;
      continue;
    }
    out += value[i++];
  }
  return out;
}

std::string decodeQuotedPrintable(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '=') {
      out += text[i];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '\n') {
      ++i;
      continue;
    }
    REQUIRE(i + 2 < text.size());
    out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return out;
}

std::string formDecode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

/// name → decoded value of an application/x-www-form-urlencoded body or query.
std::map<std::string, std::string> formFields(std::string_view text) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = std::min(text.find('&', start), text.size());
    auto pair = text.substr(start, end - start);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos)
      out[formDecode(pair.substr(0, eq))] = formDecode(pair.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

/// A message as a Maildir file holds it: header fields unfolded, and the body.
struct Mail {
  std::map<std::string, std::vector<std::string>> headers;
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() || it->second.empty() ? std::string() : it->second.front();
  }
};

Mail parseMail(const std::string& file) {
  Mail mail;
  auto split = file.find("\n\n");
  REQUIRE(split != std::string::npos);
  mail.body = file.substr(split + 2);
  std::string head = file.substr(0, split + 1);
  std::string current;
  auto flush = [&] {
    if (current.empty()) return;
    auto colon = current.find(':');
    REQUIRE(colon != std::string::npos);
    mail.headers[current.substr(0, colon)].push_back(current.substr(colon + 2));
    current.clear();
  };
  std::istringstream lines(head);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      current += line;  // unfolding removes only the line break
      continue;
    }
    flush();
    current = line;
  }
  flush();
  return mail;
}

std::vector<fs::path> mailFiles(const fs::path& maildir) {
  std::vector<fs::path> out;
  if (!fs::exists(maildir / "new")) return out;
  for (const auto& entry : fs::directory_iterator(maildir / "new")) out.push_back(entry.path());
  return out;
}

/// A socket bound to a port of 127.0.0.1, held for the test so no one else takes the port.
/// kRefusing: not listening, so a connection is refused at once. kSilent: listening but never
/// accepting, so the TCP handshake completes and then nothing ever answers.
class LoopbackPort {
 public:
  enum Mode { kRefusing, kSilent };
  explicit LoopbackPort(Mode mode) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (mode == kSilent) REQUIRE(listen(fd_, 4) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackPort() { close(fd_); }
  LoopbackPort(const LoopbackPort&) = delete;
  LoopbackPort& operator=(const LoopbackPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

notify::Notice sampleNotice() {
  notify::Notice n;
  n.ticket = 42;
  n.kind = "opened";
  n.customer = "ACME";
  n.site = "Berlin-DC1";
  n.family = "hitachi_df";
  n.model = "HUS110";
  n.serial = "91110206";
  n.arrayName = "hus-berlin-1";
  n.problem = "Fan 0/1 Alarm";
  n.code = "fan.alarm";
  n.severity = "moderate";
  n.meaning = "A fan is not Normal; the array bridges the loss for a while (status Alarm)";
  n.text = "Fan 0/1 Alarm\r\nunit 0, fan 1: Alarm";
  n.component = "fan";
  n.count = 3;
  n.firstSeenMs = 1'700'000'000'000;
  n.lastSeenMs = 1'700'000'300'000;
  n.ackUrl = "https://home.example:9456/ack/42?token=3f9a";
  return n;
}

// --- servers --------------------------------------------------------------------------------

/// tools/http-receiver/http-receiver.py logging to `dir`/requests.jsonl.
class Receiver {
 public:
  Receiver(const TempDir& dir, std::vector<std::string> options)
      : dir_(dir.path()), portFile_(dir / "http-port"), child_(argv(options), portFile_) {}
  std::string base(bool tls = false) const {
    return fmt::format("{}://127.0.0.1:{}", tls ? "https" : "http", child_.port());
  }
  std::vector<json> requests() const { return readJsonLines(dir_ / "requests.jsonl"); }
  fs::path cert() const { return dir_ / "tls/cert.pem"; }

 private:
  std::vector<std::string> argv(const std::vector<std::string>& options) const {
    std::vector<std::string> args{
        "python3",     (kSource / "tools/http-receiver/http-receiver.py").string(),
        "--port",      "0",
        "--port-file", portFile_.string(),
        "--log",       (dir_ / "requests.jsonl").string()};
    for (const auto& o : options) args.push_back(o == "TLS" ? (dir_ / "tls").string() : o);
    return args;
  }
  fs::path dir_;
  fs::path portFile_;
  pass::test::ChildServer child_;
};

std::string headerOf(const json& request, std::string_view name) {
  for (const auto& pair : request["headers"]) {
    std::string key = pair[0];
    if (key.size() == name.size() &&
        std::equal(key.begin(), key.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return pair[1];
    }
  }
  return {};
}

notify::SmtpSettings smtpSettings(const Smtpd& server) {
  notify::SmtpSettings s;
  s.url = server.url();
  s.from = "PASS home <pass@home.example>";
  s.caFile = server.cert().string();
  s.user = "pass";
  s.password = "s3cret";
  s.connectTimeout = 5000ms;
  s.totalTimeout = 10000ms;
  return s;
}

const std::vector<std::string> kTlsAuth{"--self-signed", "TLS",  "--require-starttls",
                                        "--auth-user",   "pass", "--auth-password",
                                        "s3cret"};

}  // namespace

// --- rendering ------------------------------------------------------------------------------

TEST_CASE("render: subject, body and SMS of an opened ticket") {
  auto r = notify::render(sampleNotice());
  CHECK(r.subject == "[PASS #42] ACME/Berlin-DC1 HUS110 91110206: Fan 0/1 Alarm (opened)");
  CHECK(r.text == readFile(kData / "opened.txt"));
  CHECK(r.sms ==
        "#42 91110206 opened: Fan 0/1 Alarm (moderate) ACME/Berlin-DC1 x3 Ack: "
        "https://home.example:9456/ack/42?token=3f9a");
  CHECK(notify::gsmSeptets(r.sms) <= notify::kSmsMaxSeptets);
}

TEST_CASE("render: an agent ticket without array, and a notice without a ticket") {
  notify::Notice n;
  n.ticket = 7;
  n.kind = "opened";
  n.customer = "ACME";
  n.site = "Berlin-DC1";
  n.problem = "missing heartbeat from agent svp-01";
  n.count = 1;
  auto r = notify::render(n);
  CHECK(r.subject == "[PASS #7] ACME/Berlin-DC1: missing heartbeat from agent svp-01 (opened)");
  CHECK(r.sms == "#7 opened: missing heartbeat from agent svp-01 ACME/Berlin-DC1");
  CHECK(r.text ==
        "New ticket #7: missing heartbeat from agent svp-01\n\n"
        "Site:        Berlin-DC1\n"
        "Customer:    ACME\n"
        "Occurrences: 1\n"
        "Ticket:      #7\n");

  notify::Notice storm;
  storm.kind = "storm_on";
  storm.site = "Berlin-DC1";
  storm.detail = "52 alerts in 5 minutes.\nOne summary every 15 minutes until it calms down.";
  auto s = notify::render(storm);
  CHECK(s.subject == "[PASS] Berlin-DC1: storm mode on (storm_on)");
  CHECK(s.sms == "PASS storm_on: storm mode on Berlin-DC1");
  CHECK(s.text ==
        "Storm mode on\n\n"
        "Site:        Berlin-DC1\n"
        "Occurrences: 1\n\n"
        "52 alerts in 5 minutes.\nOne summary every 15 minutes until it calms down.\n");
}

TEST_CASE("render: no field can add a header line or a control character") {
  auto n = sampleNotice();
  n.problem = "Fan\r\nBcc: victim@example.org\x07";
  n.customer = "AC\xffME";  // not UTF-8
  auto r = notify::render(n);
  CHECK(r.subject ==
        "[PASS #42] AC\xEF\xBF\xBDME/Berlin-DC1 HUS110 91110206: Fan Bcc: victim@example.org "
        "(opened)");
  CHECK_FALSE(contains(r.subject, "\n"));
  CHECK_FALSE(contains(r.sms, "\n"));
  CHECK(contains(r.text, "New ticket #42: Fan Bcc: victim@example.org\n"));
}

TEST_CASE("render: a long SMS is cut before the whole ack link, in GSM septets") {
  auto n = sampleNotice();
  n.problem = std::string(300, 'x');
  auto r = notify::render(n);
  std::string link = " Ack: https://home.example:9456/ack/42?token=3f9a";
  CHECK(r.sms.size() == notify::kSmsMaxSeptets);
  CHECK(r.sms.starts_with("#42 91110206 opened: xxx"));
  CHECK(r.sms.ends_with("x..." + link));

  // Characters of the extension table take two septets: "[" costs 2.
  n.problem = std::string(200, '[');
  r = notify::render(n);
  CHECK(notify::gsmSeptets(r.sms) <= notify::kSmsMaxSeptets);
  CHECK(notify::gsmSeptets(r.sms) >= notify::kSmsMaxSeptets - 1);
  CHECK(r.sms.ends_with("[..." + link));

  // A link that would leave too little text is left out rather than cut.
  n.problem = "Fan 0/1 Alarm";
  n.ackUrl = "https://home.example/ack/" + std::string(150, 'a');
  r = notify::render(n);
  CHECK(r.sms == "#42 91110206 opened: Fan 0/1 Alarm (moderate) ACME/Berlin-DC1 x3");
}

TEST_CASE("render: the SMS stays in the GSM alphabet") {
  auto n = sampleNotice();
  n.customer = "Müller & Søn";
  n.site = "Bañolas";
  n.problem = "Lüfter “0/1” ausgefallen… ç ✓";
  auto r = notify::render(n);
  CHECK(notify::gsmSeptets(r.sms) != SIZE_MAX);
  CHECK(contains(r.sms, "Lüfter \"0/1\" ausgefallen... c ?"));
  CHECK(contains(r.sms, "Müller & Søn/Bañolas"));
  CHECK(notify::gsmSeptets("✓") == SIZE_MAX);
  CHECK(notify::gsmSeptets("a[b") == 4);
  CHECK(notify::toGsm("`Ça va?` – «oui»") == "'Ça va?' - \"oui\"");
}

TEST_CASE("render: cleanLine, cleanText and cutChars") {
  CHECK(notify::cleanLine("  a\tb\r\n\x01 c  ") == "a b c");
  CHECK(notify::cleanText("l1  \r\nl2\rl3\n\n") == "l1\nl2\nl3");
  CHECK(notify::cutChars("äöüäöü", 5) == "äö...");
  CHECK(notify::cutChars("äöü", 3) == "äöü");
}

TEST_CASE("PagerDuty: an opened ticket is a trigger with the documented fields") {
  auto event = notify::pagerDutyEvent(sampleNotice(), "R0UT1NGKEY");
  CHECK(event == json::parse(readFile(kData / "pagerduty-opened.json")));
  CHECK(event["payload"]["severity"] == "warning");

  auto n = sampleNotice();
  n.kind = "resolved";
  CHECK(notify::pagerDutyEvent(n, "K") ==
        json{{"routing_key", "K"}, {"event_action", "resolve"}, {"dedup_key", "pass-42"}});
  n.kind = "acknowledged";
  CHECK(notify::pagerDutyEvent(n, "K")["event_action"] == "acknowledge");
  n.kind = "escalated";
  CHECK(notify::pagerDutyEvent(n, "K")["event_action"] == "trigger");

  n.problem = std::string(2000, 'p');
  CHECK(notify::pagerDutyEvent(n, "K")["payload"]["summary"].get<std::string>().size() <=
        notify::kPagerDutySummaryMaxChars);
  n.serial.clear();
  CHECK(notify::pagerDutyEvent(n, "K")["payload"]["source"] == "Berlin-DC1");
}

TEST_CASE("PagerDuty: severity from each family's scale") {
  const std::pair<const char*, const char*> table[] = {// Hitachi SVP and DF
                                                       {"acute", "critical"},
                                                       {"serious", "error"},
                                                       {"moderate", "warning"},
                                                       {"service", "info"},
                                                       // HPE 3PAR
                                                       {"Fatal", "critical"},
                                                       {"Critical", "critical"},
                                                       {"Major", "error"},
                                                       {"Minor", "warning"},
                                                       {"Degraded", "warning"},
                                                       {"Informational", "info"},
                                                       {"Debug", "info"},
                                                       // Nimble
                                                       {"critical", "critical"},
                                                       {"warning", "warning"},
                                                       {"notice", "info"},
                                                       {"info", "info"},
                                                       // unknown
                                                       {"", "error"},
                                                       {"bogus", "error"}};
  for (const auto& [word, expected] : table) {
    CAPTURE(word);
    CHECK(notify::pagerDutySeverity(word) == expected);
  }
}

TEST_CASE("webhook JSON: every field of the notice") {
  auto body = notify::webhookJson(sampleNotice());
  CHECK(body == json::parse(readFile(kData / "webhook-opened.json")));
  notify::Notice bare;
  bare.kind = "test";
  auto b = notify::webhookJson(bare);
  CHECK(b["first_seen"].is_null());
  CHECK(b["ticket"] == 0);
}

TEST_CASE("emailMessage: headers and a 7bit body for ASCII") {
  auto r = notify::render(sampleNotice());
  std::string m = notify::emailMessage("PASS home <pass@home.example>",
                                       {"oncall@example.org", "Boss, The <boss@example.org>"}, r,
                                       "notif-7", 1'700'000'000'000);
  CHECK(m.starts_with(
      "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
      "From: PASS home <pass@home.example>\r\n"
      "To: oncall@example.org, \"Boss, The\" <boss@example.org>\r\n"
      "Subject: [PASS #42] ACME/Berlin-DC1 HUS110 91110206: Fan 0/1 Alarm (opened)\r\n"
      "Message-ID: <notif-7@pass>\r\n"
      "Auto-Submitted: auto-generated\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=UTF-8\r\n"
      "Content-Transfer-Encoding: 7bit\r\n"
      "\r\n"
      "New ticket #42: Fan 0/1 Alarm\r\n"));
  CHECK(m.ends_with("Acknowledge: https://home.example:9456/ack/42?token=3f9a\r\n"));

  // A long ASCII subject is folded at spaces, and unfolds to itself.
  r.subject = "word " + std::string(60, 's') + " " + std::string(30, 't') + " end";
  std::string folded = notify::emailMessage("a@b", {"c@d"}, r, "id", 0);
  CHECK(contains(folded, "Subject: word " + std::string(60, 's') + "\r\n " + std::string(30, 't') +
                             " end\r\n"));
  CHECK(notify::emailMessage("a@b", {"c@d"}, r, "bad id<>\r\n", 0)
            .find("Message-ID: <bad_id____@pass>") != std::string::npos);
}

TEST_CASE("emailMessage: non-ASCII goes RFC 2047 and quoted-printable, lines stay short") {
  auto n = sampleNotice();
  n.customer = "Müller GmbH";
  n.text = "Lüfter 0/1 = Alarm " + std::string(200, 'y') + " \nend";
  auto r = notify::render(n);
  std::string m = notify::emailMessage("Zentrale Süd <pass@home.example>", {"oncall@example.org"},
                                       r, "notif-8", 1'700'000'000'000);
  CHECK(contains(m, "From: =?UTF-8?B?"));
  CHECK(contains(m, "Content-Transfer-Encoding: quoted-printable\r\n"));
  std::istringstream lines(m);
  for (std::string line; std::getline(lines, line);) {
    CAPTURE(line);
    CHECK(line.size() <= 77);  // 76 and the CR
  }
  // What a mail reader decodes is what was rendered.
  std::string lf;
  for (char c : m) {
    if (c != '\r') lf += c;
  }
  auto mail = parseMail(lf);
  CHECK(decodeEncodedWords(mail.header("Subject")) == r.subject);
  CHECK(decodeEncodedWords(mail.header("From")) == "Zentrale Süd <pass@home.example>");
  CHECK(decodeQuotedPrintable(mail.body) == notify::cleanText(r.text) + "\n");
}

TEST_CASE("request templates: each placeholder escaped for its content type, once") {
  notify::TemplateValues v{
      .to = "+49 151", .from = "PASS", .text = "a \"b\" \\ {to} & <c> é", .ticket = 42};
  CHECK(notify::expandTemplate(R"({"to":"{to}","text":"{text}","ticket":{ticket}})",
                               notify::Escape::kJson, v) ==
        R"({"to":"+49 151","text":"a \"b\" \\ {to} & <c> é","ticket":42})");
  CHECK(notify::expandTemplate("to={to}&text={text}&id={ticket}&x={unknown}", notify::Escape::kForm,
                               v) ==
        "to=%2B49+151&text=a+%22b%22+%5C+%7Bto%7D+%26+%3Cc%3E+%C3%A9&id=42&x={unknown}");
  CHECK(notify::expandTemplate("<to>{to}</to><m>{text}</m>", notify::Escape::kXml, v) ==
        "<to>+49 151</to><m>a &quot;b&quot; \\ {to} &amp; &lt;c&gt; é</m>");
  CHECK(notify::expandTemplate("/send?to={to}", notify::Escape::kUrl, v) == "/send?to=%2B49%20151");

  CHECK(notify::escapeFor("application/json; charset=utf-8").value() == notify::Escape::kJson);
  CHECK(notify::escapeFor("application/vnd.api+json").value() == notify::Escape::kJson);
  CHECK(notify::escapeFor("Application/X-WWW-Form-Urlencoded").value() == notify::Escape::kForm);
  CHECK(notify::escapeFor("text/xml").value() == notify::Escape::kXml);
  auto plain = notify::escapeFor("text/plain");
  REQUIRE_FALSE(plain);
  CHECK(plain.error().code == "notify.settings");
}

TEST_CASE("HTTP status classification") {
  for (long s : {200L, 201L, 202L, 204L}) CHECK(name(notify::classifyHttpStatus(s)) == "sent");
  for (long s : {0L, 408L, 425L, 429L, 500L, 502L, 503L, 504L}) {
    CHECK(name(notify::classifyHttpStatus(s)) == "retry");
  }
  for (long s : {301L, 400L, 401L, 403L, 404L, 410L, 422L}) {
    CHECK(name(notify::classifyHttpStatus(s)) == "permanent");
  }
}

// --- e-mail against pass-smtpd ---------------------------------------------------------------

TEST_CASE("email: delivered with STARTTLS and AUTH into the Maildir") {
  TempDir dir;
  Smtpd server(dir, kTlsAuth);
  auto r = notify::render(sampleNotice());
  auto sent =
      notify::sendEmail(smtpSettings(server), {"On Call <oncall@example.org>"}, r, "notif-1");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");

  auto files = mailFiles(server.maildir());
  REQUIRE(files.size() == 1);
  auto mail = parseMail(readFile(files[0]));
  CHECK(mail.header("Return-Path") == "<pass@home.example>");
  CHECK(mail.header("Delivered-To") == "oncall@example.org");
  CHECK(mail.header("Message-ID") == "<notif-1@pass>");
  CHECK(mail.header("Subject") == r.subject);
  CHECK(mail.header("From") == "PASS home <pass@home.example>");
  CHECK(mail.header("To") == "On Call <oncall@example.org>");
  CHECK(mail.header("Content-Type") == "text/plain; charset=UTF-8");
  CHECK(mail.header("MIME-Version") == "1.0");
  CHECK_FALSE(mail.header("Date").empty());
  CHECK(mail.body == r.text);

  auto auth = eventsNamed(server.events(), "auth");
  REQUIRE(auth.size() == 1);
  CHECK(auth[0]["tls"] == true);
  CHECK(auth[0]["success"] == true);
  CHECK(eventsNamed(server.events(), "message").at(0)["tls"] == true);
}

TEST_CASE("email: a non-ASCII notice arrives as it was rendered") {
  TempDir dir;
  Smtpd server(dir, kTlsAuth);
  auto n = sampleNotice();
  n.customer = "Société Générale";
  n.text = "Lüfter 0/1: Alarm";
  n.detail = ".\n.a line that starts with a dot (SMTP's end of data without dot-stuffing)";
  auto r = notify::render(n);
  auto sent = notify::sendEmail(smtpSettings(server), {"oncall@example.org"}, r, "notif-2");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");
  auto files = mailFiles(server.maildir());
  REQUIRE(files.size() == 1);
  auto mail = parseMail(readFile(files[0]));
  CHECK(mail.header("Content-Transfer-Encoding") == "quoted-printable");
  CHECK(decodeEncodedWords(mail.header("Subject")) == r.subject);
  CHECK(decodeQuotedPrintable(mail.body) == r.text);
}

TEST_CASE("email: a wrong password is permanent and sends nothing") {
  TempDir dir;
  Smtpd server(dir, kTlsAuth);
  auto settings = smtpSettings(server);
  settings.password = "wrong";
  auto sent =
      notify::sendEmail(settings, {"oncall@example.org"}, notify::render(sampleNotice()), "n");
  INFO(sent.detail);
  CHECK(name(sent.outcome) == "permanent");
  CHECK(contains(sent.detail, "535"));
  CHECK(contains(sent.detail, server.url()));
  CHECK(mailFiles(server.maildir()).empty());
  auto auth = eventsNamed(server.events(), "auth");
  REQUIRE(auth.size() == 1);
  CHECK(auth[0]["success"] == false);
}

TEST_CASE("email: a rejected recipient is permanent") {
  TempDir dir;
  auto options = kTlsAuth;
  options.insert(options.end(), {"--reject-rcpt", "gone@example.org"});
  Smtpd server(dir, options);
  auto sent = notify::sendEmail(smtpSettings(server), {"gone@example.org"},
                                notify::render(sampleNotice()), "n");
  INFO(sent.detail);
  CHECK(name(sent.outcome) == "permanent");
  CHECK(contains(sent.detail, "550"));
  CHECK(contains(sent.detail, "gone@example.org"));
  CHECK(mailFiles(server.maildir()).empty());
  CHECK(eventsNamed(server.events(), "rejected_rcpt").size() == 1);
}

TEST_CASE("email: a server that is down, and one that fails temporarily, mean retry") {
  TempDir dir;
  auto options = kTlsAuth;
  options.insert(options.end(), {"--tempfail", "1"});
  Smtpd server(dir, options);
  auto settings = smtpSettings(server);
  auto r = notify::render(sampleNotice());

  auto first = notify::sendEmail(settings, {"oncall@example.org"}, r, "notif-3");
  INFO(first.detail);
  CHECK(name(first.outcome) == "retry");
  CHECK(contains(first.detail, "451"));
  CHECK(mailFiles(server.maildir()).empty());

  auto second = notify::sendEmail(settings, {"oncall@example.org"}, r, "notif-3");
  INFO(second.detail);
  CHECK(name(second.outcome) == "sent");
  CHECK(mailFiles(server.maildir()).size() == 1);

  server.stop();
  auto down = notify::sendEmail(settings, {"oncall@example.org"}, r, "notif-3");
  INFO(down.detail);
  CHECK(name(down.outcome) == "retry");
  CHECK(contains(down.detail, settings.url));

  LoopbackPort refusing(LoopbackPort::kRefusing);
  settings.url = fmt::format("smtp://127.0.0.1:{}", refusing.port());
  CHECK(name(notify::sendEmail(settings, {"oncall@example.org"}, r, "notif-3").outcome) == "retry");
}

TEST_CASE("email and webhook: a server that never answers times out, and that means retry") {
  LoopbackPort silent(LoopbackPort::kSilent);
  auto r = notify::render(sampleNotice());
  notify::SmtpSettings s;
  s.url = fmt::format("smtp://127.0.0.1:{}", silent.port());
  s.from = "pass@home.example";
  s.totalTimeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto sent = notify::sendEmail(s, {"oncall@example.org"}, r, "n");
  INFO(sent.detail);
  CHECK(name(sent.outcome) == "retry");
  CHECK(contains(sent.detail, "timed out"));
  CHECK(std::chrono::steady_clock::now() - start < 5s);

  notify::WebhookSettings w;
  w.preset = "json";
  w.url = fmt::format("http://127.0.0.1:{}/hook", silent.port());
  w.totalTimeout = 300ms;
  auto hook = notify::sendWebhook(w, sampleNotice(), "k");
  INFO(hook.detail);
  CHECK(name(hook.outcome) == "retry");
  CHECK(contains(hook.detail, "timed out"));
}

TEST_CASE("email: required STARTTLS that the server does not offer fails before AUTH") {
  TempDir dir;
  Smtpd server(dir, {"--auth-user", "pass", "--auth-password", "s3cret"});
  auto settings = smtpSettings(server);
  auto r = notify::render(sampleNotice());
  auto sent = notify::sendEmail(settings, {"oncall@example.org"}, r, "n");
  INFO(sent.detail);
  CHECK(name(sent.outcome) == "retry");
  CHECK(contains(sent.detail, "STARTTLS"));
  CHECK(eventsNamed(server.events(), "auth").empty());
  CHECK(mailFiles(server.maildir()).empty());

  // The same server takes the password in clear text from a client that allows it: the
  // events file would have shown the AUTH above.
  settings.tls = notify::SmtpSettings::Tls::kNone;
  auto plain = notify::sendEmail(settings, {"oncall@example.org"}, r, "n");
  INFO(plain.detail);
  CHECK(name(plain.outcome) == "sent");
  auto auth = eventsNamed(server.events(), "auth");
  REQUIRE(auth.size() == 1);
  CHECK(auth[0]["tls"] == false);
}

TEST_CASE("email: a client without TLS at a server that requires STARTTLS is refused") {
  TempDir dir;
  Smtpd server(dir, kTlsAuth);
  auto settings = smtpSettings(server);
  settings.tls = notify::SmtpSettings::Tls::kNone;
  auto sent =
      notify::sendEmail(settings, {"oncall@example.org"}, notify::render(sampleNotice()), "n");
  INFO(sent.detail);
  CHECK(name(sent.outcome) == "permanent");
  CHECK(contains(sent.detail, "530"));
  CHECK(eventsNamed(server.events(), "auth").empty());
  CHECK(mailFiles(server.maildir()).empty());
}

TEST_CASE("email: a server certificate the CA file does not vouch for is not trusted") {
  TempDir dir;
  Smtpd server(dir, kTlsAuth);
  auto settings = smtpSettings(server);
  settings.caFile.clear();  // the system store knows nothing of the self-signed certificate
  auto sent =
      notify::sendEmail(settings, {"oncall@example.org"}, notify::render(sampleNotice()), "n");
  INFO(sent.detail);
  CHECK(name(sent.outcome) == "retry");
  CHECK(eventsNamed(server.events(), "auth").empty());
  CHECK(mailFiles(server.maildir()).empty());
}

TEST_CASE("email: settings and addresses that cannot work are permanent without a connection") {
  auto r = notify::render(sampleNotice());
  notify::SmtpSettings s;
  s.url = "http://mail.example:25";
  s.from = "pass@home.example";
  CHECK(name(notify::sendEmail(s, {"a@b.example"}, r, "n").outcome) == "permanent");
  LoopbackPort refusing(LoopbackPort::kRefusing);
  s.url = fmt::format("smtp://127.0.0.1:{}", refusing.port());
  CHECK(name(notify::sendEmail(s, {}, r, "n").outcome) == "permanent");
  CHECK(name(notify::sendEmail(s, {"a@b.example\r\nRCPT TO:<x@y>"}, r, "n").outcome) ==
        "permanent");
  s.from = "not an address";
  CHECK(name(notify::sendEmail(s, {"a@b.example"}, r, "n").outcome) == "permanent");
  s.from = "pass@home.example";
  s.url = "smtps://127.0.0.1:465";
  s.tls = notify::SmtpSettings::Tls::kNone;
  CHECK(name(notify::sendEmail(s, {"a@b.example"}, r, "n").outcome) == "permanent");
}

TEST_CASE("email-to-SMS: the SMS text is the body of a subject-less mail") {
  TempDir dir;
  Smtpd server(dir, kTlsAuth);
  auto r = notify::render(sampleNotice());
  auto sent =
      notify::sendEmailToSms(smtpSettings(server), "4915112345678@sms.example.net", r, "notif-4");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");
  auto files = mailFiles(server.maildir());
  REQUIRE(files.size() == 1);
  auto mail = parseMail(readFile(files[0]));
  CHECK(mail.headers.count("Subject") == 0);
  CHECK(mail.header("Delivered-To") == "4915112345678@sms.example.net");
  CHECK(mail.body == r.sms + "\n");
}

// --- SMS and webhooks against http-receiver --------------------------------------------------

TEST_CASE("sms: a generic JSON template, escaped, with basic auth and Idempotency-Key") {
  TempDir dir;
  Receiver receiver(dir, {});
  auto n = sampleNotice();
  n.problem = R"(Fan "0/1" \ Alarm)";
  auto r = notify::render(n);
  notify::HttpSmsSettings s;
  s.preset = "generic";
  s.url = receiver.base() + "/api/sms";
  s.contentType = "application/json";
  s.bodyTemplate = R"({"to":"{to}","from":"{from}","text":"{text}","ref":{ticket}})";
  s.from = "PASS";
  s.user = "gw-user";
  s.password = "gw-pass";
  s.headers = {{"X-Api-Version", "2"}};
  auto sent = notify::sendSms(s, "+4915112345678", r, 42, "notif-5");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");

  auto requests = receiver.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0]["method"] == "POST");
  CHECK(requests[0]["path"] == "/api/sms");
  auto body = json::parse(requests[0]["body"].get<std::string>());
  CHECK(body == json{{"to", "+4915112345678"}, {"from", "PASS"}, {"text", r.sms}, {"ref", 42}});
  CHECK(contains(r.sms, R"(Fan "0/1" \ Alarm)"));
  CHECK(headerOf(requests[0], "Content-Type") == "application/json");
  CHECK(headerOf(requests[0], "Authorization") == "Basic " + base64("gw-user:gw-pass"));
  CHECK(headerOf(requests[0], "Idempotency-Key") == "notif-5");
  CHECK(headerOf(requests[0], "X-Api-Version") == "2");
}

TEST_CASE("sms: a generic GET gateway gets its values percent-encoded in the URL") {
  TempDir dir;
  Receiver receiver(dir, {});
  auto r = notify::render(sampleNotice());
  notify::HttpSmsSettings s;
  s.preset = "generic";
  s.method = "GET";
  s.url = receiver.base() + "/send?to={to}&msg={text}&id={ticket}";
  auto sent = notify::sendSms(s, "+49 151 12345678", r, 42, "notif-6");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");
  auto requests = receiver.requests();
  REQUIRE(requests.size() == 1);
  std::string path = requests[0]["path"];
  REQUIRE(path.starts_with("/send?"));
  auto fields = formFields(path.substr(6));
  CHECK(fields["to"] == "+49 151 12345678");
  CHECK(fields["msg"] == r.sms);
  CHECK(fields["id"] == "42");
  CHECK(requests[0]["body"] == "");
}

TEST_CASE("sms: the Twilio preset posts To, From and Body with the account's basic auth") {
  TempDir dir;
  Receiver receiver(dir, {});
  auto r = notify::render(sampleNotice());
  notify::HttpSmsSettings s;
  s.preset = "twilio";
  s.url = receiver.base() + "/2010-04-01/Accounts/AC0123/Messages.json";
  s.from = "+15005550006";
  s.user = "AC0123";
  s.password = "auth-token";
  auto sent = notify::sendSms(s, "+4915112345678", r, 42, "notif-7");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");
  CHECK(contains(sent.detail, "HTTP 201"));
  CHECK(contains(sent.detail, R"("account_sid": "AC0123")"));

  auto requests = receiver.requests();
  REQUIRE(requests.size() == 1);
  CHECK(headerOf(requests[0], "Content-Type") == "application/x-www-form-urlencoded");
  CHECK(headerOf(requests[0], "Authorization") == "Basic " + base64("AC0123:auth-token"));
  CHECK(headerOf(requests[0], "Idempotency-Key") == "notif-7");
  auto fields = formFields(requests[0]["body"].get<std::string>());
  CHECK(fields == std::map<std::string, std::string>{
                      {"To", "+4915112345678"}, {"From", "+15005550006"}, {"Body", r.sms}});

  s.password.clear();
  CHECK(name(notify::sendSms(s, "+4915112345678", r, 42, "notif-7").outcome) == "permanent");
  CHECK(receiver.requests().size() == 1);
}

TEST_CASE("webhook: the json preset posts webhookJson") {
  TempDir dir;
  Receiver receiver(dir, {"--self-signed", "TLS"});
  notify::WebhookSettings s;
  s.preset = "json";
  s.url = receiver.base(true) + "/hooks/pass";
  s.caFile = receiver.cert().string();
  s.headers = {{"Authorization", "Bearer hook-token"}};
  auto sent = notify::sendWebhook(s, sampleNotice(), "notif-8");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");
  auto requests = receiver.requests();
  REQUIRE(requests.size() == 1);
  CHECK(json::parse(requests[0]["body"].get<std::string>()) == notify::webhookJson(sampleNotice()));
  CHECK(headerOf(requests[0], "Content-Type") == "application/json");
  CHECK(headerOf(requests[0], "Authorization") == "Bearer hook-token");
  CHECK(headerOf(requests[0], "Idempotency-Key") == "notif-8");

  // Without the CA file the self-signed server is not trusted, and nothing reaches it.
  s.caFile.clear();
  auto untrusted = notify::sendWebhook(s, sampleNotice(), "notif-8");
  CHECK(name(untrusted.outcome) == "retry");
  CHECK(receiver.requests().size() == 1);
}

TEST_CASE("webhook: the pagerduty preset posts an Events v2 event") {
  TempDir dir;
  Receiver receiver(dir, {});
  notify::WebhookSettings s;
  s.preset = "pagerduty";
  s.url = receiver.base() + "/v2/enqueue";
  s.routingKey = "R0UT1NGKEY";
  auto sent = notify::sendWebhook(s, sampleNotice(), "notif-9");
  INFO(sent.detail);
  REQUIRE(name(sent.outcome) == "sent");
  CHECK(contains(sent.detail, "HTTP 202"));
  auto requests = receiver.requests();
  REQUIRE(requests.size() == 1);
  auto body = json::parse(requests[0]["body"].get<std::string>());
  CHECK(body["routing_key"] == "R0UT1NGKEY");
  CHECK(body["event_action"] == "trigger");
  CHECK(body["dedup_key"] == "pass-42");
  CHECK(body["payload"]["severity"] == "warning");
  CHECK(body["payload"]["source"] == "91110206");
  CHECK(body["links"][0]["href"] == "https://home.example:9456/ack/42?token=3f9a");

  s.routingKey.clear();
  CHECK(name(notify::sendWebhook(s, sampleNotice(), "notif-9").outcome) == "permanent");
  CHECK(receiver.requests().size() == 1);
}

TEST_CASE("http channels: 503 then success, 400 permanent, 429 retry") {
  auto r = notify::render(sampleNotice());
  {
    TempDir dir;
    Receiver receiver(dir, {"--fail-first", "1"});
    notify::WebhookSettings s;
    s.preset = "json";
    s.url = receiver.base() + "/hook";
    auto first = notify::sendWebhook(s, sampleNotice(), "k");
    CHECK(name(first.outcome) == "retry");
    CHECK(contains(first.detail, "HTTP 503"));
    CHECK(name(notify::sendWebhook(s, sampleNotice(), "k").outcome) == "sent");
    CHECK(receiver.requests().size() == 2);
  }
  for (auto [status, expected] :
       {std::pair{"400", Outcome::kPermanent}, std::pair{"429", Outcome::kRetry},
        std::pair{"500", Outcome::kRetry}, std::pair{"401", Outcome::kPermanent}}) {
    CAPTURE(status);
    TempDir dir;
    Receiver receiver(dir, {"--status", status});
    notify::HttpSmsSettings s;
    s.preset = "twilio";
    s.url = receiver.base() + "/2010-04-01/Accounts/AC1/Messages.json";
    s.from = "+15005550006";
    s.user = "AC1";
    s.password = "t";
    auto sent = notify::sendSms(s, "+4915112345678", r, 42, "k");
    CHECK(name(sent.outcome) == name(expected));
    CHECK(contains(sent.detail, fmt::format("HTTP {}", status)));
  }
  notify::WebhookSettings down;
  down.preset = "json";
  LoopbackPort refusing(LoopbackPort::kRefusing);
  down.url = fmt::format("http://127.0.0.1:{}/hook", refusing.port());
  CHECK(name(notify::sendWebhook(down, sampleNotice(), "k").outcome) == "retry");
}

TEST_CASE("http channels: details name the server but never its credentials or query") {
  notify::HttpSmsSettings s;
  s.preset = "generic";
  s.method = "GET";
  LoopbackPort refusing(LoopbackPort::kRefusing);
  s.url = fmt::format("http://user:pw@127.0.0.1:{}/send?key=SECRET&to={{to}}", refusing.port());
  auto sent = notify::sendSms(s, "+49", notify::render(sampleNotice()), 1, "k");
  CHECK(name(sent.outcome) == "retry");
  CHECK(contains(sent.detail, "http://127.0.0.1:"));
  CHECK_FALSE(contains(sent.detail, "SECRET"));
  CHECK_FALSE(contains(sent.detail, "pw"));

  s.method = "POST";
  s.contentType = "text/plain";
  s.bodyTemplate = "{text}";
  CHECK(name(notify::sendSms(s, "+49", notify::render(sampleNotice()), 1, "k").outcome) ==
        "permanent");
  s.contentType = "application/json";
  s.headers = {{"X-Evil", "a\r\nHost: elsewhere"}};
  CHECK(name(notify::sendSms(s, "+49", notify::render(sampleNotice()), 1, "k").outcome) ==
        "permanent");
}
