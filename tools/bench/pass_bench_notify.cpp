// pass-bench-notify: how long after the home accepted an alert its e-mail reaches the mail
// server. Runs a real pass-home (state in a temp dir, home.xml with <smtp> to a local
// pass-smtpd and one management contact) and one agent that sends N alerts, each a distinct
// problem (its own component, so its own ticket and one mail), one per envelope and one at a
// time: an envelope sealed by libpass, POSTed by libpass's transport (mutual TLS, keep-alive),
// and the next one only after the previous alert's mail arrived. For each alert:
// t_accepted (the transport returned `accepted`) -> t_mail (pass-smtpd had the whole DATA of the
// mail for that alert, its received_ns). Both are wall-clock times on the same machine.
//
//   pass-bench-notify --home-bin build/dev/home/pass-home --alerts 1000 [--smtp starttls-auth]

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "pass/config.hpp"
#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/hpke.hpp"
#include "pass/payload.hpp"
#include "pass/transport.hpp"

namespace fs = std::filesystem;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kComponentPrefix = "bench-";
constexpr std::string_view kMailbox = "oncall-boss@example.com";

struct Options {
  std::string homeBin;
  std::string smtpd = PASS_SOURCE_DIR "/tools/smtpd/pass-smtpd.py";
  std::string python = "/usr/bin/python3";  // Debian's, which has python3-aiosmtpd
  int alerts = 1000;
  std::string smtp = "plain";  // plain (tls="none") or starttls-auth
  int gapMs = 0;               // idle time after a mail before the next alert
  int homeThreads = 2;
  std::vector<std::string> homeArgs;  // more `pass-home serve` arguments
  bool keep = false;
};

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

std::int64_t wallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void runCommand(const std::string& cmd) {
  check(std::system(cmd.c_str()) == 0, "command failed: " + cmd);
}

void writeFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  check(static_cast<bool>(out), "cannot write " + path.string());
}

/// A child process, stdout and stderr into `log`; SIGTERM and reaped when it goes.
class Child {
 public:
  Child(std::vector<std::string> argv, const fs::path& log) {
    pid_ = fork();
    check(pid_ >= 0, "fork failed");
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

int waitForPort(const fs::path& portFile, const Child& child, const std::string& what) {
  for (auto deadline = Clock::now() + std::chrono::seconds(20); Clock::now() < deadline;) {
    std::ifstream in(portFile);
    int port = 0;
    if (in >> port && port > 0) return port;
    check(child.running(), what + " exited during start-up");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error(what + " did not write its port file");
}

/// pass-smtpd's --events file, read as it grows: the `message` lines, by alert number.
class MailLog {
 public:
  explicit MailLog(const fs::path& file) : file_(file) {}
  ~MailLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  MailLog(const MailLog&) = delete;
  MailLog& operator=(const MailLog&) = delete;

  /// Reads what was appended since the last call.
  void poll() {
    if (fd_ < 0) fd_ = ::open(file_.c_str(), O_RDONLY);
    if (fd_ < 0) return;
    char buf[65536];
    ssize_t n = 0;
    while ((n = ::read(fd_, buf, sizeof buf)) > 0) pending_.append(buf, static_cast<size_t>(n));
    std::size_t start = 0;
    for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n', start)) {
      line(pending_.substr(start, nl - start));
      start = nl + 1;
    }
    pending_.erase(0, start);
  }

  /// Waits (polling every 200 µs) until alert `n` has a mail; its received_ns, or nullopt.
  std::optional<std::int64_t> waitFor(int n, std::chrono::milliseconds timeout) {
    for (auto deadline = Clock::now() + timeout;;) {
      poll();
      if (auto it = mails_.find(n); it != mails_.end()) return it->second.front();
      if (Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  const std::map<int, std::vector<std::int64_t>>& mails() const { return mails_; }
  const std::vector<std::string>& unmatched() const { return unmatched_; }
  int messages() const { return messages_; }
  int tlsMessages() const { return tls_; }
  int authSuccesses() const { return auth_; }

 private:
  void line(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return;
    auto event = j.value("event", std::string());
    if (event == "auth" && j.value("success", false)) ++auth_;
    if (event != "message") return;
    ++messages_;
    if (j.value("tls", false)) ++tls_;
    std::string subject = j.value("subject", std::string());
    auto at = subject.find(kComponentPrefix);
    if (at == std::string::npos || !j.contains("received_ns")) {
      unmatched_.push_back(subject);
      return;
    }
    int n = std::atoi(subject.c_str() + at + kComponentPrefix.size());
    mails_[n].push_back(j["received_ns"].get<std::int64_t>());
  }

  fs::path file_;
  int fd_ = -1;
  std::string pending_;
  std::map<int, std::vector<std::int64_t>> mails_;
  std::vector<std::string> unmatched_;
  int messages_ = 0;
  int tls_ = 0;
  int auth_ = 0;
};

std::string homeXml(const Options& o, int smtpPort, const fs::path& tlsDir) {
  std::string smtp;
  if (o.smtp == "plain") {
    smtp = fmt::format(
        R"(<smtp url="smtp://127.0.0.1:{}" from="PASS home &lt;pass@example.com&gt;" tls="none"/>)",
        smtpPort);
  } else {
    smtp = fmt::format(
        R"(<smtp url="smtp://127.0.0.1:{}" from="PASS home &lt;pass@example.com&gt;" tls="required" user="pass" password-file="smtp-password" ca-file="{}"/>)",
        smtpPort, (tlsDir / "cert.pem").string());
  }
  // Storm mode and the rate limit at their maximum, so that each of the alerts sends its mail;
  // no escalation, so that the watchdog queues nothing of its own during the run.
  return fmt::format(R"(<?xml version="1.0"?>
<pass-home schema="1">
  <notifications storm-threshold="100000" rate-limit-per-hour="100000"/>
  {}
  <customer name="Bench" escalate-after-minutes="0">
    <contact name="Boss" role="management" email="{}"/>
  </customer>
</pass-home>
)",
                     smtp, kMailbox);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p of the sample at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

/// journal_mode is stored in the database file; synchronous is per connection, set to FULL by
/// Store::open (home/src/store/store.cpp) on each of the home's connections.
std::string journalMode(const fs::path& db) {
  sqlite3* h = nullptr;
  std::string mode = "?";
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      mode = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return mode;
}

int benchmark(const Options& o) {
  check(o.smtp == "plain" || o.smtp == "starttls-auth", "--smtp: plain or starttls-auth");
  auto root = fs::temp_directory_path() / fmt::format("pass-bench-notify-{}", getpid());
  fs::create_directories(root);
  auto homeState = root / "home";
  auto tlsDir = root / "smtpd-tls";
  auto events = root / "smtpd-events.jsonl";

  // No --maildir: the mail server's own fsync is not the home's latency.
  std::vector<std::string> smtpdArgs = {o.python,   o.smtpd,        "--port",
                                        "0",        "--port-file",  (root / "smtpd.port").string(),
                                        "--events", events.string()};
  if (o.smtp == "starttls-auth") {
    smtpdArgs.insert(smtpdArgs.end(), {"--self-signed", tlsDir.string(), "--require-starttls",
                                       "--auth-user", "pass", "--auth-password", "bench-secret"});
  }
  Child smtpd(smtpdArgs, root / "smtpd.log");
  int smtpPort = waitForPort(root / "smtpd.port", smtpd, "pass-smtpd");

  runCommand(fmt::format("'{}' init --state '{}' >/dev/null", o.homeBin, homeState.string()));
  writeFile(homeState / "smtp-password", "bench-secret\n");
  writeFile(homeState / "home.xml", homeXml(o, smtpPort, tlsDir));
  runCommand(
      fmt::format("'{}' check-config --state '{}' >/dev/null", o.homeBin, homeState.string()));

  std::vector<std::string> homeArgv = {o.homeBin,     "serve",
                                       "--state",     homeState.string(),
                                       "--listen",    "127.0.0.1:0",
                                       "--port-file", (root / "home.port").string(),
                                       "--threads",   std::to_string(o.homeThreads)};
  homeArgv.insert(homeArgv.end(), o.homeArgs.begin(), o.homeArgs.end());
  // The admin API (the acknowledgement links) on a port of its own unless --home-arg names one.
  if (std::none_of(o.homeArgs.begin(), o.homeArgs.end(),
                   [](const std::string& a) { return a.starts_with("--admin-listen"); })) {
    homeArgv.push_back("--admin-listen=127.0.0.1:0");
  }
  Child home(homeArgv, root / "home.log");
  int port = waitForPort(root / "home.port", home, "pass-home");

  auto bundle = root / "agent";
  runCommand(fmt::format(
      "'{}' enroll --state '{}' --customer Bench --site Lab --agent svp-bench --out '{}' "
      "--endpoint https://127.0.0.1:{} >/dev/null",
      o.homeBin, homeState.string(), bundle.string(), port));
  auto cfg = pass::loadAgentConfig(bundle / "agent.xml");
  check(cfg.has_value(), cfg ? "" : cfg.error().message);
  auto sign = pass::Ed25519Key::loadPem(cfg->signKey.string());
  auto hpke = pass::X25519Key::loadPem(cfg->homeHpke.string());
  check(sign.has_value() && hpke.has_value(), "cannot load the agent's keys");
  pass::TransportSettings ts;
  ts.endpoints = cfg->endpoints;
  ts.caFile = cfg->homeCa.string();
  ts.certFile = cfg->tlsCert.string();
  ts.keyFile = cfg->tlsKey.string();
  auto transport = pass::Transport::create(ts);
  check(transport.has_value(), transport ? "" : transport.error().message);

  pass::ArrayConfig array;
  array.family = "hitachi_svp";
  array.serial = "410123";
  array.model = "VSP";
  array.name = "vsp-bench";
  pass::EnvelopeHeader header;
  header.agentId = cfg->agentId;
  header.keyId = pass::hpkeKeyId(*hpke);

  MailLog mail(events);
  std::vector<double> latencyMs;
  std::vector<double> acceptMs;
  int failures = 0;
  for (int n = 1; n <= o.alerts; ++n) {
    pass::CollectedEvent e;
    e.id = fmt::format("bench-sim-{}", n);
    e.code = "307080";
    e.severity = "acute";
    e.component = fmt::format("{}{:04}", kComponentPrefix, n);
    e.text = fmt::format("benchmark alert {}", n);
    e.raw = e.text;
    auto nowMs = static_cast<std::uint64_t>(wallNs() / 1'000'000);
    e.occurredMs = static_cast<std::int64_t>(nowMs);
    header.seq = static_cast<std::uint64_t>(n);
    header.createdMs = nowMs;
    auto body = pass::payload::report(nowMs, array, std::span(&e, 1)).dump();
    auto sealed = pass::sealEnvelope(header, body, *hpke, *sign);
    check(sealed.has_value(), "seal failed");

    auto t0 = wallNs();
    auto answer = transport->post(*sealed);
    auto accepted = wallNs();
    if (answer.delivery != pass::Delivery::kAccepted) {
      if (++failures <= 3) {
        std::cerr << fmt::format("alert {}: {} {} {}\n", n, pass::toString(answer.delivery),
                                 answer.httpStatus, answer.detail);
      }
      continue;
    }
    acceptMs.push_back(static_cast<double>(accepted - t0) / 1e6);
    auto arrived = mail.waitFor(n, std::chrono::seconds(10));
    if (!arrived) {
      if (++failures <= 3) std::cerr << fmt::format("alert {}: no mail within 10 s\n", n);
      continue;
    }
    latencyMs.push_back(static_cast<double>(*arrived - accepted) / 1e6);
    if (o.gapMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.gapMs));
  }

  // A second mail for an alert would come just after the first: give it a moment to show.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  mail.poll();
  int missing = 0, doubled = 0;
  for (int n = 1; n <= o.alerts; ++n) {
    auto it = mail.mails().find(n);
    if (it == mail.mails().end()) {
      ++missing;
    } else if (it->second.size() != 1) {
      ++doubled;
    }
  }
  int strays = static_cast<int>(mail.unmatched().size());
  for (const auto& [n, times] : mail.mails()) {
    if (n < 1 || n > o.alerts) strays += static_cast<int>(times.size());
  }
  std::string journal = journalMode(homeState / "home.db");
  home.stop();
  smtpd.stop();

  std::cout << fmt::format(
      "alerts {} one at a time, smtp {} ({} of {} messages over TLS, {} AUTH), home threads {}, "
      "gap {} ms\n"
      "home database: journal_mode={}, synchronous=FULL (set by Store::open on every "
      "connection)\n"
      "accepted -> mail: p50 {:.2f} ms, p90 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms, count {}\n"
      "post -> accepted: p50 {:.2f} ms, p99 {:.2f} ms\n"
      "mails: {} for {} alerts; alerts without a mail {}, with more than one {}, stray mails {}, "
      "failures {}\n",
      o.alerts, o.smtp, mail.tlsMessages(), mail.messages(), mail.authSuccesses(), o.homeThreads,
      o.gapMs, journal, percentile(latencyMs, 0.50), percentile(latencyMs, 0.90),
      percentile(latencyMs, 0.99),
      latencyMs.empty() ? 0.0 : *std::max_element(latencyMs.begin(), latencyMs.end()),
      latencyMs.size(), percentile(acceptMs, 0.50), percentile(acceptMs, 0.99), mail.messages(),
      o.alerts, missing, doubled, strays, failures);
  if (o.keep) {
    std::cout << "kept " << root.string() << "\n";
  } else {
    fs::remove_all(root);
  }
  bool ok = failures == 0 && missing == 0 && doubled == 0 && strays == 0;
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  po::options_description desc("pass-bench-notify options");
  desc.add_options()("help,h", "show help")(
      "home-bin", po::value(&o.homeBin)->default_value("build/dev/home/pass-home"),
      "pass-home binary")("smtpd", po::value(&o.smtpd)->default_value(o.smtpd),
                          "tools/smtpd/pass-smtpd.py")(
      "python", po::value(&o.python)->default_value(o.python), "python with aiosmtpd")(
      "alerts", po::value(&o.alerts)->default_value(o.alerts), "alerts to send, one at a time")(
      "smtp", po::value(&o.smtp)->default_value(o.smtp),
      "plain (tls=\"none\") or starttls-auth (STARTTLS required, AUTH PLAIN)")(
      "gap-ms", po::value(&o.gapMs)->default_value(o.gapMs),
      "idle time after each mail before the next alert")(
      "home-threads", po::value(&o.homeThreads)->default_value(o.homeThreads),
      "pass-home --threads")("home-arg", po::value(&o.homeArgs)->composing(),
                             "one more argument for pass-home serve (repeatable)")(
      "keep", po::bool_switch(&o.keep), "keep the temp directory");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    return benchmark(o);
  } catch (const std::exception& e) {
    std::cerr << "pass-bench-notify: " << e.what() << "\n";
    return 1;
  }
}
